# Makefile - builds chat, chat5 and server5 at the top of the tree.
#
#   make            install missing build packages, then build
#   make check      install missing test packages, build, run every test
#   make CC=clang   any compiler; CFLAGS, CPPFLAGS and LDFLAGS are honoured

VERSION  = 0.1.0
CC      ?= cc
CFLAGS  ?= -O2 -g
WARNINGS = -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wstrict-prototypes \
           -Wmissing-prototypes -Wformat=2 -Wvla
PKG_CONFIG ?= pkg-config
JSONC_CFLAGS = $(shell $(PKG_CONFIG) --cflags json-c 2>/dev/null)
JSONC_LIBS   = $(shell $(PKG_CONFIG) --libs json-c 2>/dev/null || echo -ljson-c)
CMOCKA_LIBS  = $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null || echo -lcmocka)

ALL_CPPFLAGS = -D_POSIX_C_SOURCE=200809L -DVERSION='"$(VERSION)"' $(CPPFLAGS)
ALL_CFLAGS   = -std=c11 -pthread $(WARNINGS) $(JSONC_CFLAGS) $(CFLAGS)
ALL_LDFLAGS  = -pthread $(LDFLAGS)
LDLIBS      += $(JSONC_LIBS)

# Shared modules, in dependency order.
CORE   = log.o thread.o msg.o addr.o sanitize.o proto.o jstream.o msgq.o net.o
CLIENT = $(CORE) signals.o console.o listener.o inbox.o link.o
SERVER = $(CORE) signals.o listener.o subs.o
PROGRAMS = chat chat5 server5

UNIT_TESTS = tests/unit/test_addr tests/unit/test_sanitize tests/unit/test_proto \
             tests/unit/test_jstream tests/unit/test_msgq tests/unit/test_subs

.PHONY: all programs deps test-deps check unit e2e clean

all: deps
	@$(MAKE) --no-print-directory programs

programs: $(PROGRAMS)

deps:
	@sh scripts/deps.sh build

test-deps:
	@sh scripts/deps.sh test

chat: chat.o $(CLIENT)
chat5: chat5.o $(CLIENT)
server5: server5.o $(SERVER)

$(PROGRAMS):
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

%.o: %.c $(wildcard *.h)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

tests/unit/test_addr: tests/unit/test_addr.o addr.o
tests/unit/test_sanitize: tests/unit/test_sanitize.o sanitize.o
tests/unit/test_proto: tests/unit/test_proto.o proto.o sanitize.o msg.o
tests/unit/test_jstream: tests/unit/test_jstream.o jstream.o
tests/unit/test_msgq: tests/unit/test_msgq.o msgq.o msg.o thread.o
tests/unit/test_subs: tests/unit/test_subs.o subs.o msgq.o msg.o thread.o

$(UNIT_TESTS):
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CMOCKA_LIBS) $(LDLIBS)

tests/unit/%.o: tests/unit/%.c $(wildcard *.h)
	$(CC) $(ALL_CPPFLAGS) -I. $(ALL_CFLAGS) -Wno-missing-prototypes -c -o $@ $<

check: test-deps
	@$(MAKE) --no-print-directory programs $(UNIT_TESTS)
	@$(MAKE) --no-print-directory unit e2e

unit: $(UNIT_TESTS)
	@for t in $(UNIT_TESTS); do echo "== $$t"; ./$$t || exit 1; done

e2e: programs
	cd tests/e2e && pytest -q

clean:
	rm -f *.o tests/unit/*.o $(PROGRAMS) $(UNIT_TESTS)
