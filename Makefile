# Makefile — the two set-up commands of the README, plus bench and fuzz. Each target installs
# what it needs (scripts/install-deps.sh) and drives CMake; the real build lives in CMakeLists.txt.
JOBS   ?= $(shell nproc)
BUILD  ?= build
ASAN   ?= build-asan
FUZZ   ?= build-fuzz

.PHONY: all build demo test test-release test-asan bench bench-serve fuzz clean

all: build

# The library, the ferry command and the example (tests are built by `make test`).
build:
	scripts/install-deps.sh build
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DFERRY_TESTS=OFF
	cmake --build $(BUILD) -j$(JOBS)

# Runs the bundled Fashion-MNIST model on a bundled image and prints the prediction.
demo: build
	$(BUILD)/ferry inspect examples/fashion-mnist/mlp.onnx
	$(BUILD)/ferry run examples/fashion-mnist/mlp.onnx --input examples/fashion-mnist/ankle-boot.npy \
	    --output-dir $(BUILD)/demo-out
	$(BUILD)/example_classify examples/fashion-mnist/mlp.onnx examples/fashion-mnist/ankle-boot.npy
	scripts/serve-demo.sh $(BUILD)/ferry

# Every test, in a release build and again under AddressSanitizer + UndefinedBehaviorSanitizer.
test:
	scripts/install-deps.sh test
	$(MAKE) test-release
	$(MAKE) test-asan

test-release:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DFERRY_TESTS=ON
	cmake --build $(BUILD) -j$(JOBS)
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

test-asan:
	cmake -S . -B $(ASAN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFERRY_SANITIZE="address;undefined" \
	    -DFERRY_TESTS=ON
	cmake --build $(ASAN) -j$(JOBS)
	cd $(ASAN) && ctest --output-on-failure -j$(JOBS)

# ferry against ONNX Runtime, alternating, on seven models (docs/performance.md); prints a Markdown
# table and writes bench/results.json. make bench BENCH_ARGS=--quick for a shorter run.
BENCH_ARGS ?=
bench: build
	scripts/install-deps.sh test
	/usr/bin/python3 bench/run.py --ferry $(BUILD)/ferry --models $(BUILD)/bench-models $(BENCH_ARGS)

# libFuzzer on the model loader and on ferry serve's request decoding: make fuzz FUZZ_SECONDS=600
FUZZ_SECONDS ?= 60
fuzz:
	scripts/install-deps.sh fuzz
	CC=clang cmake -S . -B $(FUZZ) -DFERRY_FUZZ=ON -DFERRY_WERROR=OFF -DFERRY_MAX_TENSOR_MB=64 \
	    -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(FUZZ) -j$(JOBS) --target fuzz_model_load fuzz_v2_request
	fuzz/make-corpus.sh $(FUZZ)/seeds
	mkdir -p $(FUZZ)/corpus $(FUZZ)/corpus-v2
	$(FUZZ)/fuzz_model_load $(FUZZ)/corpus $(FUZZ)/seeds -max_total_time=$(FUZZ_SECONDS) \
	    -rss_limit_mb=4096 -malloc_limit_mb=512 -timeout=30
	$(FUZZ)/fuzz_v2_request $(FUZZ)/corpus-v2 fuzz/seeds-v2 -max_total_time=$(FUZZ_SECONDS) \
	    -rss_limit_mb=2048 -max_len=65536 -timeout=30

clean:
	rm -rf $(BUILD) $(ASAN) $(FUZZ)

# ferry serve under wrk against nginx (the HTTP ceiling), the 5-minute RSS soak and resnet18
# with dynamic batching on vs off (docs/performance.md). BENCH_SERVE_ARGS="--mode ratio" for one.
BENCH_SERVE_ARGS ?= --mode all
bench-serve: build
	scripts/install-deps.sh test
	/usr/bin/python3 bench/serve/run.py --ferry $(BUILD)/ferry $(BENCH_SERVE_ARGS)
