# embed.cmake - turn a binary file into a C array (no xxd needed).
# cmake -DIN=file -DOUT=file.c -DSYM=name -P embed.cmake
# defines: const unsigned char SYM[]; const unsigned long SYM_len;
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
string(REGEX REPLACE "((0x..,){16})" "\\1\n" body "${body}")
file(WRITE ${OUT} "/* Generated from ${IN} by embed.cmake; do not edit. */\n"
                  "const unsigned char ${SYM}[] __attribute__((aligned(8))) = {\n${body}\n};\n"
                  "const unsigned long ${SYM}_len = ${len};\n")
