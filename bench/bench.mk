# bench/bench.mk - the benchmark (included by the top-level Makefile).
#
#   make bench            install ngircd (scripts/deps.sh bench), build server5,
#                         chatbench and trivial_relay, run the fixed matrix
#                         (bench/matrix.py): server5 beside ngircd, ~8 minutes
#   make bench-tools      only build chatbench and trivial_relay
#   make bench-ceiling    chatbench against trivial_relay only (its own ceiling)
#   make bench-perf       the 100 x 2 point on server5 under perf record
#
# BENCH_ARGS is passed to matrix.py (e.g. BENCH_ARGS="--duration 5").
# Results also go to build/bench/results.{json,md} and logs to build/bench/logs/.

BENCH_O      = build/bench
BENCH_CFLAGS = -std=c11 -O2 -g -pthread -Wall -Wextra -Wpedantic -Wshadow \
               -Wconversion -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla
BENCH_TOOLS  = $(BENCH_O)/chatbench $(BENCH_O)/trivial_relay
BENCH_ARGS  ?=
PYTHON      ?= python3

.PHONY: bench bench-tools bench-ceiling bench-perf bench-deps

bench-deps:
	@sh scripts/deps.sh bench

bench-tools: $(BENCH_TOOLS)

$(BENCH_O)/%: bench/%.c
	@mkdir -p $(@D)
	$(CC) $(BENCH_CFLAGS) -o $@ $< -pthread

bench: bench-deps
	@$(MAKE) --no-print-directory programs bench-tools
	$(PYTHON) bench/matrix.py --server5 $(abspath $(O))/server5 --tools $(BENCH_O) $(BENCH_ARGS)

bench-ceiling: bench-deps
	@$(MAKE) --no-print-directory bench-tools
	$(PYTHON) bench/matrix.py --tools $(BENCH_O) --ceiling $(BENCH_ARGS)

bench-perf: bench-deps
	@$(MAKE) --no-print-directory programs bench-tools
	$(PYTHON) bench/matrix.py --server5 $(abspath $(O))/server5 --tools $(BENCH_O) --perf $(BENCH_ARGS)
