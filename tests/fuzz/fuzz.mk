# tests/fuzz/fuzz.mk - libFuzzer targets, included by the top Makefile.
#
#   make fuzz                  build the targets, run each FUZZ_SECONDS (60)
#   make fuzz FUZZ_SECONDS=600 longer
#   make fuzz FUZZ_TARGETS=addr only some targets
#   make fuzz-ci               the CI budget: 30 s per target
#   make fuzz-merge            add what the runs found to the seed corpus
#
# Needs clang with libFuzzer (Debian 12: clang, libclang-rt-14-dev).
# Targets, objects, logs and crash artifacts go to $(FUZZ_DIR); each run
# works on a scratch copy of its seed corpus, $(FUZZ_DIR)/corpus-TARGET, so a
# run never changes tests/fuzz/corpus.  A crash, failed check, leak,
# timeout, out-of-memory or any ASan/UBSan report fails the run; the input is
# saved as $(FUZZ_DIR)/artifacts/TARGET-crash-* (or leak-, timeout-, oom-);
# replay it with $(FUZZ_DIR)/fuzz_TARGET FILE.

FUZZ_CC      ?= clang
FUZZ_DIR     ?= build/fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= jstream addr proto sanitize
# Per-input time limit (s) and memory limit (MB); extra libFuzzer flags.
FUZZ_TIMEOUT ?= 10
FUZZ_RSS_MB  ?= 2048
FUZZ_FLAGS   ?=
FUZZ_CFLAGS  ?= -g -O1 -fno-omit-frame-pointer

# The stream reader sees values past the 64 KiB limit.  The validator's
# inputs go up to the 64 KiB limit too: whatever the relay accepted there
# must re-encode (the compact layout), which only large inputs test.
FUZZ_MAXLEN_jstream  = 70000
FUZZ_MAXLEN_proto    = 65600
FUZZ_MAXLEN_addr     = 512
FUZZ_MAXLEN_sanitize = 4096
FUZZ_DICT_jstream    = tests/fuzz/corpus/json.dict
FUZZ_DICT_proto      = tests/fuzz/corpus/json.dict

FUZZ_SAN        = -fsanitize=address,undefined -fno-sanitize-recover=all
# The project's warnings; CI's -Werror (from CFLAGS) carries over.
# Only the project's code is instrumented for coverage, so that cov:, ft:
# and the merged corpus measure it and not the checks in the harness.
FUZZ_ALL_CFLAGS = -std=c11 -pthread $(WARNINGS) $(filter -Werror,$(CFLAGS)) \
                  $(JSONC_CFLAGS) $(FUZZ_CFLAGS) $(FUZZ_SAN)
# msg.c locks with thread.c, whose reaper uses wake.c.
FUZZ_MODULES    = wake thread sanitize msg addr proto jstream
FUZZ_OBJS       = $(FUZZ_MODULES:%=$(FUZZ_DIR)/obj/%.o) $(FUZZ_DIR)/harness/fuzz_common.o
FUZZ_BINS       = $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz_%)
fuzz_rp        := )
FUZZ_ENV        = ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1:check_initialization_order=1 \
                  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

.PHONY: fuzz fuzz-build fuzz-ci fuzz-merge

fuzz-build: $(FUZZ_BINS)

$(FUZZ_DIR)/obj/%.o: %.c $(HEADERS) tests/fuzz/fuzz.mk
	@mkdir -p $(@D)
	$(FUZZ_CC) $(ALL_CPPFLAGS) $(FUZZ_ALL_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_DIR)/harness/%.o: tests/fuzz/%.c $(HEADERS) tests/fuzz/fuzz.mk
	@mkdir -p $(@D)
	$(FUZZ_CC) $(ALL_CPPFLAGS) $(FUZZ_ALL_CFLAGS) -c -o $@ $<

$(FUZZ_BINS): $(FUZZ_DIR)/fuzz_%: $(FUZZ_DIR)/harness/fuzz_%.o $(FUZZ_OBJS)
	$(FUZZ_CC) -pthread -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $^ $(JSONC_LIBS)

# Runs every target, even after one fails, then fails if any did.  Each
# ends with one summary line: executions, coverage, corpus.
fuzz: $(FUZZ_BINS)
	@status=0; \
	for t in $(FUZZ_TARGETS); do \
		case $$t in \
		$(foreach t,$(FUZZ_TARGETS),$(t)$(fuzz_rp) len=$(FUZZ_MAXLEN_$(t)) dict=$(FUZZ_DICT_$(t));;) \
		esac; \
		corp=$(FUZZ_DIR)/corpus-$$t; log=$(FUZZ_DIR)/fuzz_$$t.log; \
		mkdir -p $$corp $(FUZZ_DIR)/artifacts; \
		cp -R tests/fuzz/corpus/$$t/. $$corp/; \
		echo "== fuzz_$$t: $(FUZZ_SECONDS) s, -max_len=$$len, corpus $$corp ($$(ls $$corp | wc -l) inputs), log $$log"; \
		$(FUZZ_ENV) $(FUZZ_DIR)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) \
			-max_len=$$len -timeout=$(FUZZ_TIMEOUT) -rss_limit_mb=$(FUZZ_RSS_MB) \
			$${dict:+-dict=$$dict} -print_final_stats=1 \
			-artifact_prefix=$(FUZZ_DIR)/artifacts/$$t- $(FUZZ_FLAGS) $$corp \
			>$$log 2>&1; \
		rc=$$?; \
		done_line=$$(grep -E '^Done [0-9]+ runs' $$log | tail -n 1); \
		stats=$$(grep -E '^#[0-9]+[[:space:]]+DONE' $$log | tail -n 1 | \
			sed -E 's/.*(cov: [0-9]+ ft: [0-9]+ corp: [^ ]+).*/\1/'); \
		if [ $$rc -eq 0 ] && [ -n "$$done_line" ]; then \
			echo "fuzz_$$t: OK: $$done_line; $$stats"; \
		else \
			status=1; \
			echo "fuzz_$$t: FAILED (exit $$rc); end of $$log:"; \
			tail -n 60 $$log | sed 's/^/    /'; \
			sed -n 's/.*Test unit written to /    input saved as: /p' $$log; \
		fi; \
	done; \
	exit $$status

fuzz-ci:
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=30

# Grows tests/fuzz/corpus/TARGET from what the runs found: the named,
# hand-written seeds stay, and libFuzzer's -merge=1 adds, from the inputs
# merged before (named by their SHA-1) and the scratch corpus, a small set
# that covers every feature (edge and hit-count bucket) they reach.  When
# that is more than FUZZ_CORPUS_FILES files or FUZZ_CORPUS_BYTES bytes, the
# merge is redone keeping only what covers new edges.  The committed corpus
# is replaced only when the merge succeeds.
FUZZ_CORPUS_FILES ?= 300
FUZZ_CORPUS_BYTES ?= 1048576

fuzz-merge: $(FUZZ_BINS)
	@status=0; \
	for t in $(FUZZ_TARGETS); do \
		case $$t in \
		$(foreach t,$(FUZZ_TARGETS),$(t)$(fuzz_rp) len=$(FUZZ_MAXLEN_$(t));;) \
		esac; \
		seed=tests/fuzz/corpus/$$t; corp=$(FUZZ_DIR)/corpus-$$t; \
		tmp=$(FUZZ_DIR)/merge-$$t; log=$(FUZZ_DIR)/merge_$$t.log; \
		if [ ! -d $$corp ]; then echo "fuzz_$$t: no $$corp (run make fuzz first)"; continue; fi; \
		ok=1; : >$$log; \
		for features in counters edges; do \
			rm -rf $$tmp; mkdir -p $$tmp/out $$tmp/found; \
			for f in $$seed/*; do \
				[ -f "$$f" ] || continue; \
				if expr "$${f##*/}" : '[0-9a-f]\{40\}$$' >/dev/null; \
				then cp "$$f" $$tmp/found/; else cp "$$f" $$tmp/out/; fi; \
			done; \
			flags=; [ $$features = edges ] && flags=-use_counters=0; \
			if ! $(FUZZ_ENV) $(FUZZ_DIR)/fuzz_$$t -merge=1 $$flags -max_len=$$len \
				-timeout=$(FUZZ_TIMEOUT) -rss_limit_mb=$(FUZZ_RSS_MB) \
				$$tmp/out $$tmp/found $$corp >>$$log 2>&1; then ok=0; break; fi; \
			n=$$(ls $$tmp/out | wc -l); bytes=$$(cat $$tmp/out/* | wc -c); \
			if [ $$n -le $(FUZZ_CORPUS_FILES) ] && [ $$bytes -le $(FUZZ_CORPUS_BYTES) ]; then break; fi; \
			if [ $$features = edges ]; then \
				echo "fuzz_$$t: warning: $$n files, $$bytes bytes even by edges alone"; fi; \
		done; \
		if [ $$ok = 1 ]; then \
			rm -f $$seed/*; cp $$tmp/out/* $$seed/; \
			echo "fuzz_$$t: merged by $$features: $$(grep -E 'MERGE-OUTER: [0-9]+ new files' $$log | tail -n 1 | sed 's/.*MERGE-OUTER: //'); $$seed: $$n files, $$bytes bytes"; \
		else \
			status=1; echo "fuzz_$$t: merge FAILED, $$seed left alone; end of $$log:"; \
			tail -n 40 $$log | sed 's/^/    /'; \
		fi; \
		rm -rf $$tmp; \
	done; \
	exit $$status
