/*
 * Waking stopped backends. A wake is one attempt per backend at a time: the
 * first client that needs an asleep backend starts it, later ones find it
 * waking and just wait in their pool's queue. The wake is over when health
 * sees the backend accept a login (topology makes it up, and
 * wake_note_topology_change lets the job go) or at wake_timeout, when the
 * backend is asleep again and its waiting clients get the job's last error
 * (topology_note_wake_timed_out). Wake only reports: topology changes states.
 *
 * Nothing here blocks the loop: exec: commands are spawned and reaped on
 * SIGCHLD, their output is read from a pipe on the loop; http: and fly-api:
 * requests go through evhttp, one request in flight per backend.
 *
 * fly-api:<app>/<machine> uses the Fly Machines API at fly_api_url: POST
 * .../start, then GET .../wait?state=started until it answers 200 (408 is its
 * own timeout: ask again), then health takes over.
 */
#include "pgwing/wake.h"

#include "pgwing/health.h"
#include "pgwing/log.h"
#include "pgwing/runtime.h"
#include "pgwing/stats.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The process state, given by the runtime at start (wake_init): read, never written. */
static const struct runtime *rt;

void wake_init(const struct runtime *runtime)
{
	rt = runtime;
}

extern char **environ;

/*
 * An http: or fly-api: wake retries a 429, a 5xx or an unreachable endpoint
 * after this, doubling up to the max (Fly allows about 1 request/s per action).
 */
#define HTTP_RETRY_FIRST_MS 250
#define HTTP_RETRY_MAX_MS   5000
/* The Machines API's wait takes at most this many seconds. */
#define FLY_WAIT_MAX_S      60

/* Which request an HTTP wake sends next. */
enum http_step {
	HTTP_POST, /* http: the one POST */
	FLY_START, /* fly-api: POST .../start */
	FLY_WAIT,  /* fly-api: GET .../wait?state=started */
	HTTP_DONE, /* accepted, or refused: health or the deadline ends the wake */
};

/* One wake under way. */
struct wake_job {
	struct backend *b;
	struct event *deadline; /* wake_timeout */
	char *error;            /* its request's last failure, for the clients; NULL: none */
	/* http: and fly-api: */
	enum http_step step;
	char *fly_path; /* fly-api: "<base>/v1/apps/<app>/machines/<id>" */
	struct evhttp_uri *uri;
	struct evhttp_connection *conn;
	struct event *retry_timer;
	int64_t retry_delay_ms;
	struct wake_job *next;
};

/*
 * A spawned exec: command, until reaped. Kept apart from the job: a command may
 * outlive its wake (the backend came up first, or the wake timed out).
 */
struct wake_child {
	pid_t pid;
	char *backend; /* the backend's name, for the log: the backend may be gone by then */
	int fd;        /* read end of the command's stdout and stderr */
	struct event *output;
	struct evbuffer *text; /* output not yet logged: a partial line */
	struct wake_child *next;
};

static struct {
	struct event_base *base;
	struct topology *topo;
	struct event *sigchld;
	struct wake_job *jobs;
	struct wake_child *children;
} wake;

static const struct backend_config *find_config(const struct backend_config *list, int n,
						const char *name)
{
	for (int i = 0; i < n; i++)
		if (strcmp(list[i].name, name) == 0)
			return &list[i];
	return NULL;
}

/* From the config's backend of that name, else a discovered one (as topology has it). */
static const char *backend_wake_spec(const struct backend *b, const char **auth_env)
{
	const struct backend_config *bc =
		find_config(rt->cfg->backends, rt->cfg->nbackends, b->name);

	if (bc == NULL)
		bc = find_config(wake.topo->discovered, wake.topo->ndiscovered, b->name);
	if (bc == NULL)
		return NULL;
	*auth_env = bc->wake_auth_env;
	return bc->wake;
}

static struct wake_job *job_find(const struct backend *b)
{
	for (struct wake_job *j = wake.jobs; j != NULL; j = j->next)
		if (j->b == b)
			return j;
	return NULL;
}

static void job_free(struct wake_job *job)
{
	struct wake_job **link = &wake.jobs;

	while (*link != job)
		link = &(*link)->next;
	*link = job->next;
	event_free(job->deadline);
	if (job->retry_timer != NULL)
		event_free(job->retry_timer);
	/* Frees a request still in flight without calling its callback. */
	if (job->conn != NULL)
		evhttp_connection_free(job->conn);
	if (job->uri != NULL)
		evhttp_uri_free(job->uri);
	free(job->fly_path);
	free(job->error);
	free(job);
}

/*
 * Split a command line into words: blanks separate words, double quotes group
 * (and are dropped). No shell, so no expansion: exec:"sh -c '...'" for one.
 * Returns a NULL-terminated array of words pointing into line, which is edited.
 */
static char **split_command(char *line)
{
	size_t n = 0, cap = 4;
	char **argv = xmalloc(cap * sizeof(*argv));
	char *src = line, *dst = line;

	for (;;) {
		bool is_quoted = false;

		while (*src == ' ' || *src == '\t')
			src++;
		if (*src == '\0')
			break;
		if (n + 2 > cap)
			argv = xrealloc(argv, (cap *= 2) * sizeof(*argv));
		argv[n++] = dst;
		for (; *src != '\0' && (is_quoted || (*src != ' ' && *src != '\t')); src++) {
			if (*src == '"')
				is_quoted = !is_quoted;
			else
				*dst++ = *src;
		}
		if (*src != '\0')
			src++;
		*dst++ = '\0';
	}
	argv[n] = NULL;
	return argv;
}

/* Log the command's complete lines (all of it at_eof), one log line each. */
static void child_log_output(struct wake_child *c, bool at_eof)
{
	char *line;

	while ((line = evbuffer_readln(c->text, NULL, EVBUFFER_EOL_CRLF)) != NULL) {
		log_info("backend %s: wake command: %s", c->backend, line);
		free(line);
	}
	if (at_eof && evbuffer_get_length(c->text) > 0) {
		size_t len = evbuffer_get_length(c->text);

		line = xmalloc(len + 1);
		evbuffer_remove(c->text, line, len);
		line[len] = '\0';
		log_info("backend %s: wake command: %s", c->backend, line);
		free(line);
	}
}

/* Read what the command wrote; false at EOF or on an error (the pipe is done). */
static bool child_read(struct wake_child *c)
{
	char buf[4096];
	ssize_t got;

	while ((got = read(c->fd, buf, sizeof(buf))) > 0)
		evbuffer_add(c->text, buf, (size_t)got);
	child_log_output(c, got == 0);
	return got < 0 && (errno == EAGAIN || errno == EINTR);
}

static void child_close_output(struct wake_child *c)
{
	if (c->output == NULL)
		return;
	event_free(c->output);
	c->output = NULL;
	close(c->fd);
	c->fd = -1;
}

static void child_on_output(evutil_socket_t fd UNUSED, short what UNUSED, void *arg)
{
	struct wake_child *c = arg;

	if (!child_read(c))
		child_close_output(c);
}

static void child_free(struct wake_child *c)
{
	/* A daemon the command left behind may hold the pipe: take what is there, then let go. */
	if (c->output != NULL)
		child_read(c);
	child_close_output(c);
	evbuffer_free(c->text);
	free(c->backend);
	free(c);
}

/* SIGCHLD: reap our commands (only ours: pgwing has no other children) and log how they ended. */
static void on_sigchld(evutil_socket_t fd UNUSED, short what UNUSED, void *arg UNUSED)
{
	struct wake_child **link = &wake.children;

	while (*link != NULL) {
		struct wake_child *c = *link;
		int status;

		if (waitpid(c->pid, &status, WNOHANG) != c->pid) {
			link = &c->next;
			continue;
		}
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
			struct backend *b = topology_find(wake.topo, c->backend);

			log_info("backend %s: wake command (pid %d) exited with status 0",
				 c->backend, (int)c->pid);
			/* A command like pg_ctl -w start returns when the server is ready: look
			 * now. */
			if (b != NULL && b->state == BACKEND_WAKING)
				health_probe_waking(b);
		} else if (WIFEXITED(status))
			log_warn("backend %s: wake command (pid %d) exited with status %d",
				 c->backend, (int)c->pid, WEXITSTATUS(status));
		else
			log_warn("backend %s: wake command (pid %d) killed by signal %d",
				 c->backend, (int)c->pid, WTERMSIG(status));
		*link = c->next;
		child_free(c);
	}
}

/* Log what the command pid writes to fd, and reap it on SIGCHLD. */
static void child_watch(const struct backend *b, pid_t pid, int fd)
{
	struct wake_child *c = xcalloc(1, sizeof(*c));

	c->pid = pid;
	c->backend = xstrdup(b->name);
	c->fd = fd;
	c->text = CHECK_ALLOC(evbuffer_new());
	evutil_make_socket_nonblocking(fd);
	c->output = CHECK_ALLOC(event_new(wake.base, fd, EV_READ | EV_PERSIST, child_on_output, c));
	event_add(c->output, NULL);
	c->next = wake.children;
	wake.children = c;
}

/*
 * Spawn the command with stdin from /dev/null and stdout and stderr into a
 * pipe we log from. SIGPIPE goes back to its default: pgwing ignores it, and
 * an ignored signal would stay ignored across exec.
 */
static void wake_exec(struct backend *b, const char *command)
{
	char *line = xstrdup(command);
	char **argv = split_command(line);
	posix_spawn_file_actions_t actions;
	posix_spawnattr_t attr;
	sigset_t defaults, empty;
	int pipefd[2];
	pid_t pid;
	int rc;

	if (argv[0] == NULL) {
		log_error("backend %s: wake command is empty", b->name);
		goto out;
	}
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		log_error("backend %s: cannot run the wake command: pipe: %s", b->name,
			  strerror(errno));
		goto out;
	}
	posix_spawn_file_actions_init(&actions);
	posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&actions, pipefd[1], STDOUT_FILENO);
	posix_spawn_file_actions_adddup2(&actions, pipefd[1], STDERR_FILENO);
	posix_spawnattr_init(&attr);
	sigemptyset(&empty);
	sigemptyset(&defaults);
	sigaddset(&defaults, SIGPIPE);
	posix_spawnattr_setsigmask(&attr, &empty);
	posix_spawnattr_setsigdefault(&attr, &defaults);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	rc = posix_spawnp(&pid, argv[0], &actions, &attr, argv, environ);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&actions);
	close(pipefd[1]);
	if (rc != 0) {
		log_error("backend %s: cannot run the wake command %s: %s", b->name, argv[0],
			  strerror(rc));
		close(pipefd[0]);
		goto out;
	}
	log_info("backend %s: wake command started (pid %d): %s", b->name, (int)pid, command);
	child_watch(b, pid, pipefd[0]);
out:
	free(argv);
	free(line);
}

static void http_send(struct wake_job *job);

static void http_on_retry(evutil_socket_t fd UNUSED, short what UNUSED, void *arg)
{
	http_send(arg);
}

/* A 5xx or no answer: try again after a backoff, if that is still within wake_timeout. */
/* What the request is called in messages. */
static const char *http_what(const struct wake_job *job)
{
	return job->step == HTTP_POST ? "wake request" : "Machines API";
}

/* Why the wake has not worked so far: the clients are told at the deadline if it never does. */
static void job_set_error(struct wake_job *job, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void job_set_error(struct wake_job *job, const char *fmt, ...)
{
	va_list ap;
	int len;

	free(job->error);
	va_start(ap, fmt);
	len = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	job->error = xmalloc((size_t)len + 1);
	va_start(ap, fmt);
	vsnprintf(job->error, (size_t)len + 1, fmt, ap);
	va_end(ap);
}

static void http_retry(struct wake_job *job, const char *why)
{
	int64_t left = job->b->wake_started_ms + rt->cfg->wake_timeout_ms - now_ms();

	job_set_error(job, "%s failed: %s", http_what(job), why);
	if (left <= job->retry_delay_ms) {
		log_warn("backend %s: wake request failed (%s); no time left to retry",
			 job->b->name, why);
		return;
	}
	log_warn("backend %s: wake request failed (%s); retrying in %" PRId64 " ms", job->b->name,
		 why, job->retry_delay_ms);
	timer_add_ms(job->retry_timer, job->retry_delay_ms);
	job->retry_delay_ms *= 2;
	if (job->retry_delay_ms > HTTP_RETRY_MAX_MS)
		job->retry_delay_ms = HTTP_RETRY_MAX_MS;
}

/* A request the endpoint refused (4xx): retrying cannot fix it; the clients are told at the
 * deadline. */
static void http_refused(struct wake_job *job, struct evhttp_request *req, int code)
{
	const char *hint = code == 401 || code == 403 ? " (check the token)"
			   : code == 404              ? " (no such app or machine)"
						      : "";

	job_set_error(job, "%s refused: HTTP %d %s%s", http_what(job), code,
		      evhttp_request_get_response_code_line(req), hint);
	log_error("backend %s: %s", job->b->name, job->error);
	job->step = HTTP_DONE;
}

static void http_on_done(struct evhttp_request *req, void *arg)
{
	struct wake_job *job = arg;
	int code = req != NULL ? evhttp_request_get_response_code(req) : 0;
	char why[64];

	if (code >= 200 && code < 300) {
		log_info("backend %s: %s accepted (HTTP %d)", job->b->name,
			 job->step == FLY_WAIT ? "machine started: wait" : "wake request", code);
		job->retry_delay_ms = HTTP_RETRY_FIRST_MS;
		/* A failure before this one is not why it may still not wake. */
		free(job->error);
		job->error = NULL;
		if (job->step == FLY_START) {
			job->step = FLY_WAIT;
			http_send(job);
			return;
		}
		/* The machine runs: whether Postgres takes logins yet is health's to see. */
		if (job->step == FLY_WAIT)
			health_probe_waking(job->b);
		job->step = HTTP_DONE;
	} else if (code == 408 && job->step == FLY_WAIT) {
		/* The wait's own timeout, not a failure: wait again, within wake_timeout. */
		http_send(job);
	} else if (code == 0 || code == 429 || code >= 500) {
		if (code == 0)
			snprintf(why, sizeof(why), "no answer");
		else
			snprintf(why, sizeof(why), "HTTP %d", code);
		http_retry(job, why);
	} else {
		http_refused(job, req, code);
	}
}

/* "Bearer <token>", or the token as given when it names its scheme (Fly's "FlyV1 ..."). */
static void http_add_auth(struct wake_job *job, struct evkeyvalq *headers)
{
	const char *auth_env = NULL;
	const char *spec = backend_wake_spec(job->b, &auth_env);
	const char *token;

	if (auth_env == NULL && spec != NULL && strncmp(spec, "fly-api:", 8) == 0)
		auth_env = rt->cfg->fly_api_token_env;
	if (auth_env == NULL)
		return;
	token = getenv(auth_env);
	if (token == NULL) {
		log_warn("backend %s: %s is not set: waking without a token", job->b->name,
			 auth_env);
	} else if (strncmp(token, "FlyV1 ", 6) == 0) {
		evhttp_add_header(headers, "Authorization", token);
	} else {
		/* Cloud API tokens run to kilobytes: sized to fit, never truncated. */
		size_t len = strlen("Bearer ") + strlen(token) + 1;
		char *auth = xmalloc(len);

		snprintf(auth, len, "Bearer %s", token);
		evhttp_add_header(headers, "Authorization", auth);
		free(auth);
	}
}

/* The request line's target of the job's next request. */
static void http_target(const struct wake_job *job, char *target, size_t size)
{
	const char *path = evhttp_uri_get_path(job->uri);
	const char *query = evhttp_uri_get_query(job->uri);
	int64_t left_s;

	switch (job->step) {
	case FLY_START:
		snprintf(target, size, "%s/start", job->fly_path);
		break;
	case FLY_WAIT:
		/* At most what is left of wake_timeout, so an answer comes before the deadline. */
		left_s = (job->b->wake_started_ms + rt->cfg->wake_timeout_ms - now_ms()) / 1000;
		if (left_s < 1)
			left_s = 1;
		if (left_s > FLY_WAIT_MAX_S)
			left_s = FLY_WAIT_MAX_S;
		snprintf(target, size, "%s/wait?state=started&timeout=%" PRId64, job->fly_path,
			 left_s);
		break;
	default:
		snprintf(target, size, "%s%s%s", path != NULL && path[0] != '\0' ? path : "/",
			 query != NULL ? "?" : "", query != NULL ? query : "");
	}
}

static void http_send(struct wake_job *job)
{
	struct evhttp_request *req = CHECK_ALLOC(evhttp_request_new(http_on_done, job));
	struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
	bool is_get = job->step == FLY_WAIT;
	char target[1024];

	http_target(job, target, sizeof(target));
	evhttp_add_header(headers, "Host", evhttp_uri_get_host(job->uri));
	if (!is_get)
		evhttp_add_header(headers, "Content-Length", "0");
	/* One request at a time, seconds apart: nothing to keep the connection open for. */
	evhttp_add_header(headers, "Connection", "close");
	http_add_auth(job, headers);
	/* evhttp owns req from here, even when it fails at once. */
	if (evhttp_make_request(job->conn, req, is_get ? EVHTTP_REQ_GET : EVHTTP_REQ_POST,
				target) != 0)
		http_retry(job, "cannot send");
}

/*
 * "http://host[:port]/path", or "http:POST http://...", as the config has it;
 * or "fly-api:<app>/<machine>" (checked by config), through fly_api_url.
 */
static void wake_http(struct wake_job *job, const char *spec)
{
	const char *url = spec + strlen("http:");
	int port;

	job->step = HTTP_POST;
	if (strncmp(spec, "fly-api:", 8) == 0) {
		job->step = FLY_START;
		url = rt->cfg->fly_api_url;
	} else if (strncmp(url, "//", 2) == 0)
		url = spec;
	else if (strncmp(url, "POST ", 5) == 0)
		url += 5;
	job->uri = evhttp_uri_parse(url);
	if (job->uri == NULL || evhttp_uri_get_host(job->uri) == NULL ||
	    strcmp(evhttp_uri_get_scheme(job->uri), "http") != 0) {
		job_set_error(job, "%s is not an http:// URL", url);
		log_error("backend %s: cannot wake: %s", job->b->name, job->error);
		return;
	}
	port = evhttp_uri_get_port(job->uri);
	job->conn = CHECK_ALLOC(evhttp_connection_base_new(
		wake.base, rt->dns, evhttp_uri_get_host(job->uri), port > 0 ? port : 80));
	evhttp_connection_set_timeout(job->conn, (int)((rt->cfg->wake_timeout_ms + 999) / 1000));
	job->retry_timer = CHECK_ALLOC(evtimer_new(wake.base, http_on_retry, job));
	job->retry_delay_ms = HTTP_RETRY_FIRST_MS;
	if (job->step == FLY_START) {
		const char *base = evhttp_uri_get_path(job->uri);
		const char *machine = strchr(spec + 8, '/') + 1;
		int app_len = (int)(machine - 1 - (spec + 8));
		size_t base_len = base != NULL ? strlen(base) : 0;
		size_t len;

		/* A trailing / of the URL's path would double the one that follows. */
		if (base_len > 0 && base[base_len - 1] == '/')
			base_len--;
		len = base_len + strlen(spec) + 32;
		job->fly_path = xmalloc(len);
		snprintf(job->fly_path, len, "%.*s/v1/apps/%.*s/machines/%s", (int)base_len,
			 base != NULL ? base : "", app_len, spec + 8, machine);
		log_info("backend %s: starting machine %s through the Machines API at %s",
			 job->b->name, machine, url);
	} else {
		log_info("backend %s: sending wake request POST %s", job->b->name, url);
	}
	http_send(job);
}

static void job_on_deadline(evutil_socket_t fd UNUSED, short what UNUSED, void *arg)
{
	struct wake_job *job = arg;
	struct backend *b = job->b;
	char *why = job->error; /* for the waiting clients, told as topology announces it */

	/* Gone before it is announced: whoever the announcement wakes again gets a new job. */
	job->error = NULL;
	job_free(job);
	stats_events.wakes_failed++;
	topology_note_wake_timed_out(wake.topo, b, rt->cfg->wake_timeout_ms, why);
	free(why);
}

void wake_backend(struct backend *b)
{
	const char *auth_env = NULL;
	const char *spec = backend_wake_spec(b, &auth_env);
	struct wake_job *job;

	if (spec == NULL || wake.base == NULL || !topology_note_wake_started(wake.topo, b))
		return;

	job = xcalloc(1, sizeof(*job));
	job->b = b;
	job->deadline = CHECK_ALLOC(evtimer_new(wake.base, job_on_deadline, job));
	timer_add_ms(job->deadline, rt->cfg->wake_timeout_ms);
	job->next = wake.jobs;
	wake.jobs = job;

	if (strncmp(spec, "exec:", 5) == 0)
		wake_exec(b, spec + 5);
	else
		wake_http(job, spec);
	health_probe_waking(b);
}

void wake_note_topology_change(void)
{
	struct wake_job *job, *next;

	/* Health saw it accept a login and topology made it up: the wake is over. */
	for (job = wake.jobs; job != NULL; job = next) {
		next = job->next;
		if (job->b->state == BACKEND_WAKING)
			continue;
		if (job->b->state == BACKEND_UP) {
			stats_events.wakes_ok++;
			stats_note_wake(job->b->last_wake_ms * 1000);
		}
		job_free(job);
	}
}

void wake_drop_backend(const struct backend *b)
{
	struct wake_job *job = job_find(b);

	if (job != NULL)
		job_free(job);
}

int wake_start(struct event_base *base, struct topology *topo)
{
	wake.base = base;
	wake.topo = topo;
	wake.sigchld = CHECK_ALLOC(evsignal_new(base, SIGCHLD, on_sigchld, NULL));
	if (wake.sigchld == NULL || evsignal_add(wake.sigchld, NULL) != 0) {
		log_error("cannot watch SIGCHLD for wake commands");
		return -1;
	}
	return 0;
}

void wake_stop(void)
{
	while (wake.jobs != NULL)
		job_free(wake.jobs);
	while (wake.children != NULL) {
		struct wake_child *c = wake.children;

		wake.children = c->next;
		child_free(c);
	}
	if (wake.sigchld != NULL) {
		event_free(wake.sigchld);
		wake.sigchld = NULL;
	}
	wake.base = NULL;
}
