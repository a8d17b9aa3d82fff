/* Minimal console until the admin module lands: roles and the welcome. */
#include "pgwing/admin.h"

#include "pgwing/client.h"
#include "pgwing/config.h"
#include "pgwing/runtime.h"

#include <event2/bufferevent.h>

enum admin_role admin_role_of(const char *user)
{
	if (config_list_contains(rt.cfg->admin_users, user))
		return ADMIN_ROLE_ADMIN;
	if (config_list_contains(rt.cfg->stats_users, user))
		return ADMIN_ROLE_STATS;
	return ADMIN_ROLE_NONE;
}

void admin_welcome(struct client *cl)
{
	struct evbuffer *out = bufferevent_get_output(cl->bev);

	proto_put_parameter_status(out, "server_version", "15.0 (pgwing " PACKAGE_VERSION ")");
	proto_put_parameter_status(out, "client_encoding", "UTF8");
	proto_put_parameter_status(out, "server_encoding", "UTF8");
	proto_put_parameter_status(out, "DateStyle", "ISO, MDY");
	proto_put_parameter_status(out, "standard_conforming_strings", "on");
	proto_put_parameter_status(out, "integer_datetimes", "on");
	proto_put_backend_key(out, 0, 0);
	proto_put_ready(out, 'I');
}

void admin_handle_message(struct client *cl, char type UNUSED, const uint8_t *body UNUSED,
			  size_t len UNUSED)
{
	struct evbuffer *out = bufferevent_get_output(cl->bev);

	proto_put_error(out, "ERROR", SQLSTATE_FEATURE_NOT_SUPPORTED,
			"console not implemented yet");
	proto_put_ready(out, 'I');
}
