/*
 * What the libFuzzer targets share. A target checks real properties of the
 * code under test, not only that it survives: a violated property aborts, and
 * libFuzzer saves the input as a reproducer like any other crash.
 */
#ifndef PGWING_FUZZ_H
#define PGWING_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(cond)                                                                      \
	do {                                                                                  \
		if (!(cond)) {                                                                \
			fprintf(stderr, "%s:%d: property violated: %s\n", __FILE__, __LINE__, \
				#cond);                                                       \
			abort();                                                              \
		}                                                                             \
	} while (0)

/* An exact copy with no terminator, so a read past the end is an ASan finding. */
static inline char *fuzz_copy(const uint8_t *data, size_t size)
{
	char *copy = malloc(size > 0 ? size : 1);

	memcpy(copy, data, size);
	return copy;
}

/* A NUL-terminated copy, for APIs that take C strings (cut at the first NUL, as C would). */
static inline char *fuzz_cstring(const uint8_t *data, size_t size)
{
	char *copy = malloc(size + 1);

	memcpy(copy, data, size);
	copy[size] = '\0';
	return copy;
}

static inline uint32_t fuzz_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

#endif
