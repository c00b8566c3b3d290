# The two commands: `make demo` and `make test`. Everything else is a helper.
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)

.PHONY: all setup build build-asan demo test test-unit test-asan install clean bench

all: build

setup:
	@./scripts/setup.sh

$(BUILD)/Makefile: CMakeLists.txt
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

$(ASAN_BUILD)/Makefile: CMakeLists.txt
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DUNET_SANITIZE=ON >/dev/null

build: setup $(BUILD)/Makefile
	@cmake --build $(BUILD) -j $(JOBS) -- --no-print-directory

build-asan: setup $(ASAN_BUILD)/Makefile
	@cmake --build $(ASAN_BUILD) -j $(JOBS) -- --no-print-directory

demo: build
	@./scripts/demo.sh $(BUILD)

test: build build-asan
	@echo "== tests (release build)"
	@cd $(BUILD) && ctest --output-on-failure -j 2
	@echo "== tests (ASan + UBSan build)"
	@cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --output-on-failure -j 2 -LE no-asan

bench: build
	@./bench/run-all.sh $(BUILD)

install: build
	@cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
