# Makefile - builds chat, chat5 and server5 at the top of the tree.
#
#   make            build (never installs anything; says what is missing)
#   make deps       install the missing build packages (apt-get, sudo when
#                   not root)
#   make check      make deps, the test packages, build, run every test
#   make demo       make deps, build, and join a live conversation
#   make CC=clang   any compiler; CFLAGS, CPPFLAGS and LDFLAGS are honoured
#   make O=DIR      build into DIR instead (objects, programs, unit tests),
#                   e.g. make O=build/clang CC=clang programs

VERSION  = 0.2.0
CC      ?= cc
CFLAGS  ?= -O2 -g
O       ?= .
WARNINGS = -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wstrict-prototypes \
           -Wmissing-prototypes -Wformat=2 -Wvla
PKG_CONFIG ?= pkg-config

HAVE_JSONC    := $(shell $(PKG_CONFIG) --exists json-c 2>/dev/null && echo yes)
JSONC_CFLAGS   = $(shell $(PKG_CONFIG) --cflags json-c 2>/dev/null)
JSONC_LIBS     = $(shell $(PKG_CONFIG) --libs json-c 2>/dev/null || echo -ljson-c)
CMOCKA_LIBS    = $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null || echo -lcmocka)
# Optional, each built in when found: GNU readline for the interactive
# prompt (else plain input), nats.c for server5 --nats.
HAVE_READLINE := $(shell $(PKG_CONFIG) --exists readline 2>/dev/null && echo yes)
HAVE_NATS     := $(shell $(PKG_CONFIG) --exists libnats 2>/dev/null && echo yes)
ifeq ($(HAVE_READLINE),yes)
READLINE_CPPFLAGS = -DHAVE_READLINE
READLINE_LIBS     = -lreadline
endif
ifeq ($(HAVE_NATS),yes)
NATS_CPPFLAGS = -DHAVE_NATS $(shell $(PKG_CONFIG) --cflags libnats)
NATS_LIBS     = $(shell $(PKG_CONFIG) --libs libnats)
endif

ALL_CPPFLAGS = -D_POSIX_C_SOURCE=200809L -DVERSION='"$(VERSION)"' -I. $(CPPFLAGS)
ALL_CFLAGS   = -std=c11 -pthread $(WARNINGS) $(JSONC_CFLAGS) $(CFLAGS)
ALL_LDFLAGS  = -pthread $(LDFLAGS)
LDLIBS      += $(JSONC_LIBS)

# Shared modules, in dependency order.
CORE   = wake thread log sanitize msg addr proto jstream msgq net tcpout \
         listener reader cli signals
CLIENT = $(CORE) charset console inbox link outbox
SERVER = $(CORE) subs sender state cluster
PROGRAMS = $(O)/chat $(O)/chat5 $(O)/server5
HEADERS = $(wildcard *.h)

UNIT_NAMES = addr sanitize proto jstream msgq subs tcpout log charset
UNIT_TESTS = $(UNIT_NAMES:%=$(O)/tests/unit/test_%)


.PHONY: all programs deps test-deps check unit e2e clean check-asan \
        check-tsan check-sanitizers valgrind soak demo install uninstall

all: programs

programs: $(PROGRAMS)
	@:

# Plain make never installs: without json-c it stops with one line that
# says what to install.  The goals that install first (deps, check, demo,
# bench) build in a make of their own, after installing.
INSTALLING_GOALS = deps test-deps bench-deps check check-asan check-tsan \
                   check-sanitizers demo bench bench-ceiling bench-perf clean
ifneq ($(HAVE_JSONC),yes)
ifneq ($(if $(MAKECMDGOALS),$(filter-out $(INSTALLING_GOALS),$(MAKECMDGOALS)),all),)
$(error json-c is missing: install libjson-c-dev, or run make deps)
endif
endif

deps:
	@sh scripts/deps.sh build

test-deps:
	@sh scripts/deps.sh test

$(O)/chat: $(O)/chat.o $(CLIENT:%=$(O)/%.o)
$(O)/chat5: $(O)/chat5.o $(CLIENT:%=$(O)/%.o)
$(O)/server5: $(O)/server5.o $(SERVER:%=$(O)/%.o)

$(O)/chat $(O)/chat5:
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(READLINE_LIBS) $(LDLIBS)

$(O)/server5:
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(NATS_LIBS) $(LDLIBS)

$(O)/console.o: ALL_CPPFLAGS += $(READLINE_CPPFLAGS)
$(O)/cluster.o: ALL_CPPFLAGS += $(NATS_CPPFLAGS)

$(O)/%.o: %.c $(HEADERS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

UNIT_BASE = $(O)/wake.o $(O)/thread.o $(O)/log.o $(O)/sanitize.o
$(O)/tests/unit/test_addr: $(O)/addr.o
$(O)/tests/unit/test_sanitize: $(O)/sanitize.o
$(O)/tests/unit/test_proto: $(O)/proto.o $(O)/sanitize.o $(O)/msg.o $(O)/thread.o $(O)/wake.o
$(O)/tests/unit/test_jstream: $(O)/jstream.o
$(O)/tests/unit/test_msgq: $(O)/msgq.o $(O)/msg.o $(UNIT_BASE)
$(O)/tests/unit/test_subs: $(O)/subs.o $(O)/addr.o $(O)/msgq.o $(O)/msg.o $(O)/listener.o \
	$(O)/net.o $(UNIT_BASE)
$(O)/tests/unit/test_tcpout: $(O)/tcpout.o $(O)/msg.o $(UNIT_BASE)
$(O)/tests/unit/test_log: $(UNIT_BASE)
$(O)/tests/unit/test_charset: $(O)/charset.o $(UNIT_BASE)

$(UNIT_TESTS): $(O)/tests/unit/%: $(O)/tests/unit/%.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CMOCKA_LIBS) $(LDLIBS)

$(O)/tests/unit/%.o: tests/unit/%.c $(HEADERS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -Wno-missing-prototypes -c -o $@ $<

check: deps test-deps
	@$(MAKE) --no-print-directory programs $(UNIT_TESTS)
	@$(MAKE) --no-print-directory unit e2e

unit: $(UNIT_TESTS)
	@for t in $(UNIT_TESTS); do echo "== $$t"; ./$$t || exit 1; done

# The end-to-end suite runs against $(O)'s programs.  The valgrind
# conversations run apart (make valgrind), so they are deselected here,
# not skipped.
e2e: programs
	cd tests/e2e && CHAT=$(abspath $(O))/chat CHAT5=$(abspath $(O))/chat5 \
		SERVER5=$(abspath $(O))/server5 E2E_TIMEOUT=$(E2E_TIMEOUT) \
		E2E_SANITIZER=$(E2E_SANITIZER) \
		pytest -q -rs -m "not valgrind" $(E2E_ARGS)

E2E_TIMEOUT ?= 10

# The whole suite again under the sanitizers, built apart in build/.
# Any report fails the run: the harness scans every program's stderr.
SAN_FLAGS = -O1 -g -fno-omit-frame-pointer -fno-sanitize-recover=all

check-asan: test-deps
	@$(MAKE) --no-print-directory O=build/asan CC=clang \
		CFLAGS="$(SAN_FLAGS) -fsanitize=address,undefined" \
		LDFLAGS="-fsanitize=address,undefined" E2E_TIMEOUT=30 E2E_SANITIZER=asan unit e2e

check-tsan: test-deps
	@$(MAKE) --no-print-directory O=build/tsan CC=clang \
		CFLAGS="$(SAN_FLAGS) -fsanitize=thread" \
		LDFLAGS="-fsanitize=thread" E2E_TIMEOUT=40 E2E_SANITIZER=tsan unit e2e

check-sanitizers: check-asan check-tsan

# Full conversations under valgrind memcheck: no leak, no error.
valgrind: test-deps programs
	cd tests/e2e && pytest -q -m valgrind test_valgrind.py test_cluster.py

# A few minutes of churn against server5 (not part of check).
soak: programs
	python3 tests/soak/soak.py

# A live local conversation to join (see scripts/demo.sh).
NAME ?= $(USER)
demo: deps
	@$(MAKE) --no-print-directory programs
	@scripts/demo.sh $(NAME)

PREFIX ?= /usr/local
BINDIR  = $(PREFIX)/bin
MANDIR  = $(PREFIX)/share/man/man1
UNITDIR = $(PREFIX)/lib/systemd/system

install: programs
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR) $(DESTDIR)$(UNITDIR)
	install -m 755 $(PROGRAMS) $(DESTDIR)$(BINDIR)/
	install -m 644 man/chat.1 man/chat5.1 man/server5.1 $(DESTDIR)$(MANDIR)/
	sed 's|@BINDIR@|$(BINDIR)|g' dist/server5.service > $(DESTDIR)$(UNITDIR)/server5.service
	chmod 644 $(DESTDIR)$(UNITDIR)/server5.service

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/chat $(DESTDIR)$(BINDIR)/chat5 $(DESTDIR)$(BINDIR)/server5
	rm -f $(DESTDIR)$(MANDIR)/chat.1 $(DESTDIR)$(MANDIR)/chat5.1 $(DESTDIR)$(MANDIR)/server5.1
	rm -f $(DESTDIR)$(UNITDIR)/server5.service

# Subsystems keep their rules beside their files.
-include tests/fuzz/fuzz.mk
-include bench/bench.mk

clean:
	rm -f *.o tests/unit/*.o chat chat5 server5 $(UNIT_NAMES:%=tests/unit/test_%)
	rm -rf build
