/*
 * The runtime: the process state (the loop, the live config, the auth file,
 * the topology), and what changes it: start, reload, the topology's one
 * subscriber, drain, shutdown and signals. Every other module reads the state
 * through the const pointer its *_init was given.
 */
#include "pgwing/auth.h"
#include "pgwing/server.h"
#include "pgwing/conn.h"
#include "pgwing/cancel.h"
#include "pgwing/admin.h"
#include "pgwing/auth_query.h"
#include "pgwing/client.h"
#include "pgwing/config.h"
#include "pgwing/discovery.h"
#include "pgwing/health.h"
#include "pgwing/janitor.h"
#include "pgwing/listener.h"
#include "pgwing/log.h"
#include "pgwing/metrics.h"
#include "pgwing/pool.h"
#include "pgwing/runtime.h"
#include "pgwing/link.h"
#include "pgwing/stats.h"
#include "pgwing/takeover.h"
#include "pgwing/tls.h"
#include "pgwing/topology.h"
#include "pgwing/wake.h"

#include <event2/dns.h>
#include <event2/event.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#include <time.h>
#endif

static struct runtime rt;

/* Draining: how often to look whether the last client has gone. */
#define DRAIN_CHECK_MS 200

static struct event *drain_timer;

/*
 * Tell systemd (Type=notify) where the process is: READY=1 once the listeners
 * accept, RELOADING=1 and READY=1 around a reload, STOPPING=1. Without
 * NOTIFY_SOCKET in the environment sd_notify does nothing; without libsystemd
 * neither does this. MONOTONIC_USEC dates a reload, which systemd 253's
 * Type=notify-reload asks for and older ones ignore.
 */
static void notify_systemd(const char *state)
{
#ifdef HAVE_LIBSYSTEMD
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	sd_notifyf(0, "%s\nMONOTONIC_USEC=%lld", state,
		   (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000);
#else
	(void)state;
#endif
}

static struct auth_file *load_auth_file(const struct config *cfg, char *err, size_t errlen)
{
	/* trust needs no passwords, so a missing file is fine there. */
	if (cfg->auth_type == AUTH_TRUST && access(cfg->auth_file, F_OK) != 0)
		return auth_file_load("/dev/null", err, errlen);
	return auth_file_load(cfg->auth_file, err, errlen);
}

/* Each client costs two descriptors (its socket and its server's): take all we may have. */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_warn("could not raise the open files limit: %s", strerror(errno));
	}
}

static int write_pidfile(const char *path)
{
	char buf[32];
	int fd, len;

	if (path[0] == '\0')
		return 0;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		log_error("could not write pidfile %s: %s", path, strerror(errno));
		return -1;
	}
	len = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (write(fd, buf, (size_t)len) != len) {
		log_error("could not write pidfile %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static int daemonize(void)
{
	pid_t pid = fork();
	int fd;

	if (pid < 0)
		return -1;
	if (pid > 0)
		_exit(0);
	setsid();
	fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		/* stderr stays if it is the log target; the log was opened before. */
		if (rt.cfg->logfile[0] != '\0')
			dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	return 0;
}

/*
 * The table knows which settings can't change live: those keep their running
 * value (so SHOW CONFIG tells the truth) and the log says a restart is needed.
 */
static void keep_restart_settings(const struct config *old, struct config *new)
{
	size_t n;
	const struct setting *settings = config_settings(&n);

	for (size_t i = 0; i < n; i++) {
		if (settings[i].is_reloadable || !config_is_changed(old, new, &settings[i]))
			continue;
		log_warn("reload: %s changed; it takes effect only after a restart",
			 settings[i].name);
		config_copy_setting(new, old, &settings[i]);
	}
}

static void reload_config(void)
{
	char err[512];
	struct config *cfg = config_reload(rt.cfg, err, sizeof(err));
	struct auth_file *af;

	if (cfg == NULL) {
		log_error("reload failed, keeping the running config: %s", err);
		return;
	}
	af = load_auth_file(cfg, err, sizeof(err));
	if (af == NULL) {
		log_error("reload failed, keeping the running config: %s", err);
		config_free(cfg);
		return;
	}
	/* New certificates for new connections; established ones keep theirs. */
	if (!tls_configure(cfg, err, sizeof(err))) {
		log_error("reload failed, keeping the running config: %s", err);
		auth_file_free(af);
		config_free(cfg);
		return;
	}
	keep_restart_settings(rt.cfg, cfg);
	/* After keep_restart_settings: listen_addr is the one still in use. */
	auth_warn_config(cfg);
	if (strcmp(cfg->logfile, rt.cfg->logfile) != 0 && log_reopen(cfg->logfile) < 0)
		log_error("could not open logfile %s: %s", cfg->logfile, strerror(errno));
	log_set_format(cfg->log_format);
	auth_file_free(rt.auth);
	rt.auth = af;
	config_free(rt.cfg);
	rt.cfg = cfg;
	janitor_reconfigure(rt.cfg);
	runtime_apply_backends();
	/* auth_user, auth_query or the file's users may have changed: look up afresh. */
	auth_query_forget();
	discovery_reconfigure(rt.cfg);
	log_info("configuration reloaded from %s", rt.cfg->path);
	link_on_topology_change(NULL);
}

/*
 * b left the topology: every module that may hold a pointer to it lets go, in
 * this order, before it is freed. Its wake is given up and its probe closed
 * first, so that nothing reports on it any more; then the link has the servers
 * that clients hold forget it (their sessions move when idle) and its pooled
 * idle servers close.
 */
static void drop_backend(struct backend *b)
{
	wake_drop_backend(b);
	health_drop_backend(b);
	link_on_backend_removed(b);
}

void runtime_apply_backends(void)
{
	struct backend_list removed = topology_apply_config(rt.topo, rt.cfg);

	for (int i = 0; i < removed.count; i++)
		drop_backend(removed.items[i]);
	topology_free_removed(&removed);
	/* New backends get probes, the others reconnect with the new settings. */
	health_reconfigure(rt.cfg, rt.auth);
	/* A removed backend may have been the primary, or the one that fenced another. */
	topology_reconcile(rt.topo);
	topology_notify(rt.topo);
}

/*
 * The topology's one subscriber: each module hears of a change in this order.
 * Wakes that ended are settled first (their counters, before anything reads
 * them); a failed wake's waiters get its error before the link looks for
 * servers again, or they would wait for another wake; then the link ends,
 * releases, moves and serves clients; then discovery looks again if a
 * backend went down.
 */
static void on_topology_change(const struct topology_change *change)
{
	if (change->is_suspect)
		health_probe_all_now();
	wake_note_topology_change();
	if (change->wake_failed != NULL)
		pool_fail_wake_waiters(change->wake_failed, change->wake_error);
	link_on_topology_change(NULL);
	discovery_note_topology_change();
}

/* Discovery changed the backends: applied as a reload applies [backends]. */
static void apply_discovered(void)
{
	runtime_apply_backends();
	link_on_topology_change(NULL);
}

void runtime_reload(void)
{
	/* READY=1 whatever the outcome: a failed reload keeps the old config running. */
	notify_systemd("RELOADING=1");
	reload_config();
	notify_systemd("READY=1");
}

/*
 * A drain (SIGTERM) goes through its phases on this timer; SHUTDOWN
 * WAIT_FOR_CLIENTS only waits for the last client, console ones included.
 */
static void drain_check_cb(evutil_socket_t fd UNUSED, short what UNUSED, void *arg UNUSED)
{
	int64_t elapsed = now_ms() - rt.drain_started_ms;

	if (rt.drain_started_ms == 0) {
		if (client_count() == 0) {
			log_info("all clients gone, stopping");
			event_base_loopbreak(rt.base);
		}
		return;
	}
	if (elapsed >= rt.cfg->shutdown_timeout_ms) {
		log_info("drain: shutdown_timeout reached, cancelling what still runs");
		client_cancel_all();
		runtime_shutdown(false);
		return;
	}
	if (elapsed < rt.cfg->shutdown_grace_ms)
		return;
	/* As PostgreSQL's fast shutdown says it, to clients between transactions. */
	if (client_close_idle("terminating connection due to administrator command") == 0) {
		log_info("drain: every client has left, stopping");
		runtime_shutdown(false);
	}
}

bool runtime_is_accepting_clients(void)
{
	return !rt.is_shutting_down || (rt.drain_started_ms != 0 &&
					now_ms() - rt.drain_started_ms < rt.cfg->shutdown_grace_ms);
}

void runtime_drain(void)
{
	if (rt.is_shutting_down)
		return;
	log_info("draining: not ready; new clients accepted for %" PRId64
		 " ms; clients closed as their transactions end; cancelled after %" PRId64 " ms",
		 rt.cfg->shutdown_grace_ms, rt.cfg->shutdown_timeout_ms);
	notify_systemd("STOPPING=1");
	rt.is_shutting_down = true;
	rt.drain_started_ms = now_ms();
	/* The listeners stay: the console must stay reachable, and others get 57P03. */
	drain_timer = CHECK_ALLOC(event_new(rt.base, -1, EV_PERSIST, drain_check_cb, NULL));
	timer_add_ms(drain_timer, DRAIN_CHECK_MS);
}

void runtime_shutdown(bool wait_for_clients)
{
	/* Once: a drain that ends here has said it when it began. */
	if (!rt.is_shutting_down)
		notify_systemd("STOPPING=1");
	if (wait_for_clients) {
		if (rt.is_shutting_down)
			return;
		log_info("shutting down: no new connections; stopping when the last client leaves");
		rt.is_shutting_down = true;
		listener_stop();
		drain_timer = CHECK_ALLOC(event_new(rt.base, -1, EV_PERSIST, drain_check_cb, NULL));
		timer_add_ms(drain_timer, DRAIN_CHECK_MS);
		return;
	}
	log_info("shutting down now");
	rt.is_shutting_down = true;
	if (drain_timer != NULL)
		event_del(drain_timer);
	listener_stop();
	client_close_all("pgwing is shutting down");
	/* A moment for the goodbyes to be written. */
	event_base_loopexit(rt.base, &(struct timeval){0, DRAIN_CHECK_MS * 1000});
}

static void signal_cb(evutil_socket_t sig, short what UNUSED, void *arg UNUSED)
{
	switch (sig) {
	case SIGHUP:
		log_info("SIGHUP: reloading configuration");
		runtime_reload();
		break;
	case SIGTERM:
		log_info("SIGTERM: draining");
		runtime_drain();
		break;
	case SIGINT:
		log_info("SIGINT: fast shutdown");
		runtime_shutdown(false);
		break;
	default:
		break;
	}
}

/* Every module that reads the process state gets it here, before anything runs. */
static void modules_init(void)
{
	admin_init(&rt);
	auth_query_init(&rt);
	cancel_init(&rt);
	client_init(&rt);
	conn_init(&rt);
	health_init(&rt);
	link_init(&rt);
	metrics_init(&rt);
	pool_init(&rt);
	server_init(&rt);
	stats_init(&rt);
	takeover_init(&rt);
	tls_init(&rt);
	wake_init(&rt);
}

bool runtime_prepare(struct config *cfg, char *err, size_t errlen)
{
	rt.cfg = cfg;
	rt.auth = load_auth_file(cfg, err, errlen);
	if (rt.auth == NULL || !tls_configure(cfg, err, errlen)) {
		runtime_release();
		return false;
	}
	return true;
}

void runtime_release(void)
{
	tls_shutdown();
	auth_file_free(rt.auth);
	rt.auth = NULL;
	config_free(rt.cfg);
	rt.cfg = NULL;
}

int runtime_run(bool is_daemon, bool is_takeover)
{
	struct event *signals[3];
	const int signos[3] = {SIGHUP, SIGTERM, SIGINT};
	int rc = 1;

	auth_warn_config(rt.cfg);
	raise_fd_limit();
	/* A client that vanishes mid-write must be an error return, not a dead process. */
	signal(SIGPIPE, SIG_IGN);

	rt.base = event_base_new();
	if (rt.base == NULL || !free_later_start(rt.base)) {
		log_error("could not create the event loop");
		return 1;
	}
	rt.dns = discovery_new_resolver(rt.base, rt.cfg);
	rt.topo = topology_new(rt.cfg);
	if (rt.dns == NULL && rt.cfg->dns_nameserver[0] != '\0')
		goto out;
	rt.topo->on_change = on_topology_change;
	modules_init();

	if ((is_takeover ? takeover_receive_listeners() : listener_start(rt.base, rt.cfg)) < 0)
		goto out;
	if (is_daemon) {
		if (daemonize() < 0) {
			log_error("could not daemonize: %s", strerror(errno));
			goto out;
		}
		listener_relock();
	}
	for (size_t i = 0; i < ARRAY_SIZE(signos); i++) {
		signals[i] = CHECK_ALLOC(evsignal_new(rt.base, signos[i], signal_cb, NULL));
		evsignal_add(signals[i], NULL);
	}
	if (health_start(rt.base, rt.topo, rt.cfg, rt.auth) < 0)
		goto out_signals;
	if (stats_start(rt.base) < 0 || metrics_start(rt.base, rt.cfg) < 0 ||
	    wake_start(rt.base, rt.topo) < 0)
		goto out_stats;
	janitor_start(rt.base, rt.topo, rt.cfg);
	discovery_start(rt.base, rt.dns, rt.topo, rt.cfg, apply_discovered);
	/* Last before a takeover's word: a start that fails leaves the running one's pidfile. */
	if (write_pidfile(rt.cfg->pidfile) < 0 || takeover_start(is_takeover) < 0)
		goto out_stats;
	log_info("pgwing %s started", PACKAGE_VERSION);
	notify_systemd("READY=1");

	event_base_dispatch(rt.base);
	rc = 0;
out_stats:
	janitor_stop();
	discovery_stop();
	wake_stop();
	metrics_stop();
	stats_stop();
	health_stop();
	auth_query_stop();
out_signals:
	for (size_t i = 0; i < ARRAY_SIZE(signos); i++)
		event_free(signals[i]);
out:
	takeover_stop();
	listener_stop();
	client_close_all("pgwing is shutting down");
	if (drain_timer != NULL)
		event_free(drain_timer);
	pool_free_all();
	if (rt.cfg->pidfile[0] != '\0' && rc == 0 && !takeover_is_handed_over())
		unlink(rt.cfg->pidfile);
	topology_free(rt.topo);
	if (rt.dns != NULL)
		evdns_base_free(rt.dns, 0);
	/*
	 * Freed bufferevents finish in deferred finalizers; a TLS filter's frees its
	 * socket bufferevent, whose own finalizer event_base_free would no longer
	 * run (the pooled TLS servers closed above leaked it). One pass of the loop
	 * runs them while the base is whole.
	 */
	event_base_loop(rt.base, EVLOOP_NONBLOCK);
	free_later_stop();
	event_base_free(rt.base);
	runtime_release();
	return rc;
}
