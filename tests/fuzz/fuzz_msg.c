/*
 * fuzz_msg.c - libFuzzer harness for the msg layer's fragment parser
 * (unet__msg_parse in src/unet/msg_wire.c), the one function every byte a
 * peer sends passes through before it reaches any channel state.
 *
 * Besides "no crash, no out-of-bounds read" (ASan), it checks what the
 * channel code relies on for every accepted fragment: the payload lies
 * inside the input, tags and statuses are in range, SYN bodies are sane.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc/unet -Iinclude \
 *         tests/fuzz/fuzz_msg.c src/unet/msg_wire.c -o fuzz_msg
 *   ./fuzz_msg -max_total_time=10
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "msg_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct msg_frag f;
	uint8_t *copy;

	if (size > 70000)
		return 0;
	/* An exact-size heap copy so ASan sees any read past the end. */
	copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	if (unet__msg_parse(copy, (uint32_t)size, &f) == 0) {
		const uint8_t *end = copy + size;
		/* The payload is exactly the bytes after the header and any
		 * fields the parser consumed (tag, SYN body, selective acks). */
		if (f.payload < copy + MSG_HDR || f.payload > end ||
		    f.plen != (uint32_t)(end - f.payload))
			abort();
		if ((f.op == MSG_OP_SYN || f.op == MSG_OP_ACK || f.op == MSG_OP_RST) && f.plen)
			abort();
		if (f.epoch == 0 || f.op < MSG_OP_DATA || f.op > MSG_OP_RST)
			abort();
		if ((f.flags & (MSG_F_REQ | MSG_F_REPLY)) && f.tag == 0)
			abort();
		if ((f.flags & MSG_F_NACK) && (f.status >= 0 || f.status < -4095))
			abort();
		if (f.op == MSG_OP_SYN && (f.credit == 0 || f.maxfrag < MSG_MIN_FRAG))
			abort();
		volatile uint8_t sink = 0;
		for (uint32_t i = 0; i < f.plen; i++)
			sink ^= f.payload[i];
		(void)sink;
	}
	free(copy);
	return 0;
}
