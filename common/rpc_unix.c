/*
 * rpc_unix.c - Unix-socket listeners and the peer-uid check, the trust
 * boundary of every local socket (DESIGN.md "Conventions", Listeners).
 *
 * What is checked: the uid of the process at the other end of the
 * connection, as the kernel recorded it at connect() (SO_PEERCRED), against
 * the uids configured for the socket (rpc_listener_opts.allowed_uids;
 * default: this process's euid only; any_uid, for test servers, admits
 * every uid but still requires the credentials to be read).
 * When: on every call, not once per connection, in rpc_dispatch_find():
 * after the method is known and its row admits this listener, before the
 * request body is read or any handler runs.
 * How: we accept connections ourselves and hand each to gRPC with
 * grpc_server_add_channel_from_fd(); gRPC then names the call's peer
 * "fd:N", and getsockopt(N, SO_PEERCRED) gives uid and pid. gRPC 1.51 has
 * no other way to tell us; "fd:N" is its internal format, pinned by
 * tests/unit/common/test_rpc.c (test_peer).
 * Failing closed: a peer that is not "fd:" and a number, a failing
 * getsockopt, or a uid not on the list all answer PERMISSION_DENIED ("peer
 * uid N is not allowed on the <name> socket", N -1 when unknown) and are
 * logged with uid and pid. A Unix listener's calls reach a handler only
 * through rpc_dispatch_find(). File permissions are the first fence: the
 * socket is made 0660 in a directory made 0750, group socket_gid.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <grpc/grpc.h>
#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>

#include "err.h"
#include "log.h"
#include "rpc_int.h"

struct rpc_unix {
	const char *name;        /* the listener's, for logs */
	char *path;
	grpc_server *gs;
	grpc_server_credentials *creds;
	int fd;
	int stop_pipe[2];
	pthread_t accept_thr;
	int accept_started;
	uid_t *uids;
	size_t nuids;
	int any_uid;
};

int
rpc_unix_peer_check(const struct rpc_unix *u, rpc_call *call)
{
	struct ucred cred;
	socklen_t clen = sizeof cred;
	char *peer = grpc_call_get_peer(call->gcall);
	char *end;
	long fd = -1;
	int rc = -1;

	if (peer && strncmp(peer, "fd:", 3) == 0) {
		errno = 0;
		fd = strtol(peer + 3, &end, 10);
		if (errno || *end != '\0' || fd < 0 || fd > INT_MAX)
			fd = -1;
	}
	if (fd < 0) {
		/* The peer format this check relies on changed. */
		log_warnx("listener %s: unexpected peer \"%s\"; refusing",
		    u->name, peer ? peer : "(null)");
		goto out;
	}
	if (getsockopt((int)fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0) {
		log_warn("listener %s: SO_PEERCRED", u->name);
		goto out;
	}
	call->uid = cred.uid;
	call->pid = cred.pid;
	if (u->any_uid)
		rc = 0;
	for (size_t i = 0; i < u->nuids && rc != 0; i++)
		if (u->uids[i] == cred.uid)
			rc = 0;
out:
	gpr_free(peer);
	if (rc != 0) {
		rpc_fail(call, RPC_PERMISSION_DENIED,
		    "peer uid %ld is not allowed on the %s socket", call->uid,
		    u->name);
		log_warnx("listener %s: refused %s from uid %ld pid %ld",
		    u->name, call->method, call->uid, call->pid);
	}
	return rc;
}

/* The socket's directory, if missing: parents as mkdir -p makes them, the
 * directory itself with the restrictive mode and the peer's group. */
static int
make_dir(const struct rpc_unix *u, const rpc_listener_opts *o)
{
	struct stat st;
	char *dir, *slash;
	int rc = SF_EIO;

	if ((dir = strdup(u->path)) == NULL)
		return SF_ENOMEM;
	if ((slash = strrchr(dir, '/')) == NULL || slash == dir) {
		rc = 0;
		goto out;
	}
	*slash = '\0';
	if (stat(dir, &st) == 0) {
		rc = 0;
		goto out;
	}
	for (char *p = dir + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
			log_warn("listener %s: mkdir %s", u->name, dir);
			goto out;
		}
		*p = '/';
	}
	if (mkdir(dir, o->dir_mode ? o->dir_mode : 0750) != 0) {
		log_warn("listener %s: mkdir %s", u->name, dir);
		goto out;
	}
	if (o->socket_gid != (gid_t)-1 && o->socket_gid != 0 &&
	    chown(dir, (uid_t)-1, o->socket_gid) != 0)
		log_warn("listener %s: chgrp %s", u->name, dir);
	rc = 0;
out:
	free(dir);
	return rc;
}

/* Bind and listen on u->path with the configured mode and group. */
static int
bind_socket(struct rpc_unix *u, const rpc_listener_opts *o)
{
	struct sockaddr_un sun;
	struct stat st;
	int fd = -1, rc = SF_EIO;

	if (lstat(u->path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			log_warnx("listener %s: %s exists and is not a socket",
			    u->name, u->path);
			return SF_ECONFIG;
		}
		unlink(u->path);
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		log_warn("listener %s: socket", u->name);
		goto out;
	}
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, u->path, strlen(u->path) + 1);
	if (bind(fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
		log_warn("listener %s: bind %s", u->name, u->path);
		goto out;
	}
	if (chmod(u->path, o->socket_mode ? o->socket_mode : 0660) != 0) {
		log_warn("listener %s: chmod %s", u->name, u->path);
		goto out;
	}
	if (o->socket_gid != (gid_t)-1 && o->socket_gid != 0 &&
	    chown(u->path, (uid_t)-1, o->socket_gid) != 0) {
		log_warn("listener %s: chgrp %s", u->name, u->path);
		goto out;
	}
	if (listen(fd, 128) != 0) {
		log_warn("listener %s: listen", u->name);
		goto out;
	}
	u->fd = fd;
	fd = -1;  /* transferred */
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

/*
 * Open the Unix listener o->address ("unix:/path") for the gRPC server gs:
 * the socket's directory, the bound socket, the allowed uids. Accepts
 * nothing until rpc_unix_start(). *out is freed with rpc_unix_close().
 */
int
rpc_unix_open(const rpc_listener_opts *o, const char *name, grpc_server *gs,
    struct rpc_unix **out)
{
	struct rpc_unix *u;
	int rc = SF_ENOMEM;

	*out = NULL;
	if ((u = calloc(1, sizeof *u)) == NULL)
		return SF_ENOMEM;
	u->name = name;
	u->gs = gs;
	u->fd = -1;
	u->stop_pipe[0] = u->stop_pipe[1] = -1;
	u->any_uid = o->any_uid;
	u->nuids = o->n_allowed_uids ? o->n_allowed_uids : 1;
	if ((u->uids = calloc(u->nuids, sizeof(uid_t))) == NULL ||
	    (u->path = strdup(o->address + 5)) == NULL)
		goto out;
	if (o->n_allowed_uids)
		memcpy(u->uids, o->allowed_uids, u->nuids * sizeof(uid_t));
	else
		u->uids[0] = geteuid();
	if (strlen(u->path) >= sizeof ((struct sockaddr_un *)0)->sun_path) {
		log_warnx("listener %s: socket path too long: %s", name,
		    u->path);
		rc = SF_ECONFIG;
		goto out;
	}
	if ((rc = make_dir(u, o)) != 0 || (rc = bind_socket(u, o)) != 0)
		goto out;
	if (pipe2(u->stop_pipe, O_CLOEXEC) != 0) {
		log_warn("listener %s: pipe", name);
		rc = SF_EIO;
		goto out;
	}
	/* Only insecure credentials work with add_channel_from_fd; the
	 * socket's permissions and the uid check stand in for TLS. */
	u->creds = grpc_insecure_server_credentials_create();
	*out = u;
	u = NULL;  /* transferred */
	rc = 0;
out:
	rpc_unix_close(u);
	return rc;
}

static void *
accept_main(void *arg)
{
	struct rpc_unix *u = arg;

	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = u->fd, .events = POLLIN },
			{ .fd = u->stop_pipe[0], .events = POLLIN },
		};
		int fd;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_warn("listener %s: poll", u->name);
			break;
		}
		if (pfd[1].revents)
			break;
		if (!(pfd[0].revents & POLLIN))
			continue;
		fd = accept4(u->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE) {
				log_warn("listener %s: accept", u->name);
				usleep(100000);
			}
			continue;
		}
		/* gRPC owns fd from here and closes it with the channel. */
		grpc_server_add_channel_from_fd(u->gs, fd, u->creds);
	}
	return NULL;
}

/* Start accepting (after grpc_server_start). */
int
rpc_unix_start(struct rpc_unix *u)
{
	if (pthread_create(&u->accept_thr, NULL, accept_main, u) != 0) {
		log_warn("listener %s: pthread_create", u->name);
		return SF_EINTERNAL;
	}
	u->accept_started = 1;
	return 0;
}

/* Stop accepting; connections already handed to gRPC stay its own. */
void
rpc_unix_stop(struct rpc_unix *u)
{
	if (u == NULL || !u->accept_started)
		return;
	(void)!write(u->stop_pipe[1], "x", 1);
	pthread_join(u->accept_thr, NULL);
	u->accept_started = 0;
}

/* Stop, close and remove the socket, after the gRPC server is destroyed. */
void
rpc_unix_close(struct rpc_unix *u)
{
	if (u == NULL)
		return;
	rpc_unix_stop(u);
	if (u->creds)
		grpc_server_credentials_release(u->creds);
	if (u->fd >= 0) {
		close(u->fd);
		unlink(u->path);
	}
	if (u->stop_pipe[0] >= 0)
		close(u->stop_pipe[0]);
	if (u->stop_pipe[1] >= 0)
		close(u->stop_pipe[1]);
	free(u->uids);
	free(u->path);
	free(u);
}
