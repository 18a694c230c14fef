# bench/bench.mk - the benchmark (included by the top-level Makefile).
#
#   make bench            install ngircd, netcat-openbsd and nats-server
#                         (scripts/deps.sh bench), build the programs and the
#                         tools, run the whole matrix (bench/matrix.py): server5
#                         beside ngircd, the pipe points, the cluster points;
#                         about 10 minutes on a quiet machine
#   make bench-pipe       only the pipe points (bench/pipe.py): 100,000 lines
#                         piped into chat -> chat, chat5 -> server5 -> 10
#                         chat5, nc -> nc; under a minute
#   make bench-cluster    only the cluster points (bench/cluster.py): two
#                         server5 through a 2-node NATS cluster beside one
#   make bench-tools      only build chatbench, trivial_relay, linesink, peakrss,
#                         jsonfloor
#   make bench-ceiling    chatbench against trivial_relay only (its own ceiling)
#   make bench-perf       the 100 x 2 point on server5 under perf record
#
# BENCH_ARGS is passed to matrix.py (e.g. BENCH_ARGS="--duration 5").
# Results also go to build/bench/results.{json,md} and logs to build/bench/logs/.

BENCH_O      = build/bench
BENCH_CFLAGS = -std=c11 -O2 -g -pthread -Wall -Wextra -Wpedantic -Wshadow \
               -Wconversion -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla
BENCH_TOOLS  = $(BENCH_O)/chatbench $(BENCH_O)/trivial_relay $(BENCH_O)/linesink $(BENCH_O)/peakrss \
               $(BENCH_O)/jsonfloor
BENCH_ARGS  ?=
PYTHON      ?= python3

.PHONY: bench bench-tools bench-ceiling bench-perf bench-deps bench-pipe bench-cluster

bench-deps:
	@sh scripts/deps.sh bench

bench-tools: $(BENCH_TOOLS)

$(BENCH_O)/%: bench/%.c
	@mkdir -p $(@D)
	$(CC) $(BENCH_CFLAGS) -o $@ $< -pthread

# json-c's own cost per message, the floor under the pipe points' readers.
$(BENCH_O)/jsonfloor: bench/jsonfloor.c
	@mkdir -p $(@D)
	$(CC) $(BENCH_CFLAGS) $(shell pkg-config --cflags json-c) -o $@ $< \
		$(shell pkg-config --libs json-c)

bench: bench-deps
	@$(MAKE) --no-print-directory programs bench-tools
	$(PYTHON) bench/matrix.py --server5 $(abspath $(O))/server5 --tools $(BENCH_O) $(BENCH_ARGS)

bench-pipe: bench-deps
	@$(MAKE) --no-print-directory programs bench-tools
	$(PYTHON) bench/matrix.py --server5 $(abspath $(O))/server5 --tools $(BENCH_O) --only pipe $(BENCH_ARGS)

bench-cluster: bench-deps
	@$(MAKE) --no-print-directory programs bench-tools
	$(PYTHON) bench/matrix.py --server5 $(abspath $(O))/server5 --tools $(BENCH_O) --only cluster $(BENCH_ARGS)

bench-ceiling: bench-deps
	@$(MAKE) --no-print-directory bench-tools
	$(PYTHON) bench/matrix.py --tools $(BENCH_O) --ceiling $(BENCH_ARGS)

bench-perf: bench-deps
	@$(MAKE) --no-print-directory programs bench-tools
	$(PYTHON) bench/matrix.py --server5 $(abspath $(O))/server5 --tools $(BENCH_O) --perf $(BENCH_ARGS)
