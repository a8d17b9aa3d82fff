/*
 * The allocation rule (a failed or overflowing allocation aborts with a
 * message, never returns NULL) and the lifetime rule (free_later releases an
 * object only once the loop is back from the callback chain that closed it).
 */
#include "pgwing/common.h"

#include <event2/event.h>

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

/* Run fn in a child and return how it ended: a signal number, or -1 when it returned. */
static int ends_by_signal(void (*fn)(void))
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		/* The child's abort message goes to its stderr; keep the test output clean. */
		if (freopen("/dev/null", "w", stderr) == NULL)
			_exit(2);
		fn();
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFSIGNALED(status) ? WTERMSIG(status) : -1;
}

static void calloc_overflowing(void)
{
	/* n * size wraps to exactly 0: a NULL from calloc must not pass as a 0-byte success. */
	void *volatile p = xcalloc(SIZE_MAX / 4 + 1, 4);

	(void)p;
}

static void check_null(void)
{
	CHECK_ALLOC((void *)NULL);
}

static void test_allocation_failures_abort(void **state UNUSED)
{
	assert_int_equal(ends_by_signal(calloc_overflowing), SIGABRT);
	assert_int_equal(ends_by_signal(check_null), SIGABRT);
}

static void test_allocation_succeeds(void **state UNUSED)
{
	int *p = xcalloc(4, sizeof(int));
	int x = 0;

	assert_int_equal(p[3], 0);
	free(p);
	assert_ptr_equal(CHECK_ALLOC(&x), &x);
}

/* What the released objects were, in order. */
static int released[8];
static int nreleased;

static void release_one(void *arg)
{
	released[nreleased++] = *(int *)arg;
}

static int second = 2;

/* Releasing the first closes another (a client's server): it goes in the same pass. */
static void release_and_close_another(void *arg)
{
	release_one(arg);
	free_later(release_one, &second);
}

static int first = 1;

/* A callback chain that closes an object and goes on reading it. */
static void chain_cb(evutil_socket_t fd UNUSED, short what UNUSED, void *arg UNUSED)
{
	free_later(release_and_close_another, &first);
	assert_int_equal(nreleased, 0);
}

static void test_free_later(void **state UNUSED)
{
	struct event_base *base = event_base_new();
	struct event *chain;

	assert_non_null(base);
	assert_true(free_later_start(base));
	chain = event_new(base, -1, 0, chain_cb, NULL);
	event_active(chain, 0, 0);
	assert_int_equal(event_base_loop(base, EVLOOP_ONCE), 0);
	/* The loop may need a turn more to run the reaper after the chain. */
	if (nreleased == 0)
		event_base_loop(base, EVLOOP_NONBLOCK);
	assert_int_equal(nreleased, 2);
	assert_int_equal(released[0], 1);
	assert_int_equal(released[1], 2);

	/* What is left at exit is released by free_later_stop. */
	free_later(release_one, &first);
	free_later_stop();
	assert_int_equal(nreleased, 3);
	event_free(chain);
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_allocation_failures_abort),
		cmocka_unit_test(test_allocation_succeeds),
		cmocka_unit_test(test_free_later),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
