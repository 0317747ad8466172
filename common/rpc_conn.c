/*
 * rpc_conn.c - a TCP listener's connections as gRPC accepts them, so that
 * one that abuses its streams can be closed, and the peer addresses the
 * intake (rpc_intake.c) keeps its budgets by.
 *
 * gRPC 1.51 bounds neither how fast a client may open and reset streams
 * (the 2023 "rapid reset" fixes came later) nor lets a server close one
 * connection: every reset stream still becomes a server call, faster than
 * the transport retires them, and one small client grows the process by
 * hundreds of MB a second. What 1.51 does offer is the socket mutator
 * (GRPC_ARG_SOCKET_MUTATOR), called with the fd of every connection the
 * listener accepts. We keep those fds by peer address and port. When the
 * intake charges a connection CONN_STRIKES strikes within CONN_WINDOW_MS
 * (calls that ended without their request message, or refused over their
 * peer's budget), we shutdown() its socket, which makes gRPC drop the
 * connection and cancel its calls, and for CONN_BAN_MS shut down at accept
 * every new connection from its address (an IPv4 address, an IPv6 /64).
 * A kept fd is checked against its socket's inode before use: gRPC may
 * have closed it and the number been reused.
 *
 * gRPC's public headers declare grpc_socket_mutator without defining it;
 * the layout below is 1.51's (src/core/lib/iomgr/socket_mutator.h), an
 * internal pinned as the "fd:N" peer string is, and the rapid-reset test
 * (tests/integration/test_slowclient.py) fails if it stops working.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <grpc/grpc.h>
#include <grpc/support/sync.h>

#include "err.h"
#include "log.h"
#include "rpc_int.h"
#include "util.h"

#define CONN_STRIKES 64
#define CONN_WINDOW_MS 10000
#define CONN_BAN_MS 30000
#define CONN_BUCKETS 256
#define CONN_BANS 256
#define LOG_EVERY_MS 10000
/* What a closed connection had queued and gRPC has not read yet is
 * discarded, up to this much. */
#define CONN_DISCARD_MAX (8 << 20)

/* gRPC 1.51's socket mutator, as src/core/lib/iomgr/socket_mutator.h has
 * it; usage 2 is GRPC_FD_SERVER_CONNECTION_USAGE. */
typedef struct {
	int fd;
	int usage;
} mutate_info;

struct mutator_vtable {
	bool (*mutate_fd)(int fd, grpc_socket_mutator *m);
	int (*compare)(grpc_socket_mutator *a, grpc_socket_mutator *b);
	void (*destroy)(grpc_socket_mutator *m);
	bool (*mutate_fd_2)(const mutate_info *info, grpc_socket_mutator *m);
};

struct grpc_socket_mutator {
	const struct mutator_vtable *vtable;
	gpr_refcount refcount;
};

/* An accepted connection. */
struct conn {
	struct conn *next;           /* its hash chain */
	int fd;
	ino_t ino;
	struct sockaddr_storage peer;
	int strikes;
	int64_t since;               /* the strike window's start */
};

struct ban {
	char key[RPC_PEER_KEY_LEN];
	int64_t until;
};

struct rpc_conns {
	struct grpc_socket_mutator base;   /* first: gRPC holds its address */
	char *name;
	pthread_mutex_t mu;
	struct conn *hash[CONN_BUCKETS];
	struct conn **byfd;          /* the entry of each fd, to replace */
	int nbyfd;
	struct ban bans[CONN_BANS];
	int nclosed, nrefused;       /* since the last log line */
	int64_t logged_ms;
};

/* ------------------------------------------------------------------ */
/* Peer addresses.                                                      */

/* An IPv4 peer of a dual-stack socket as the IPv4 address gRPC names. */
static void
peer_unmap(struct sockaddr_storage *ss)
{
	struct sockaddr_in6 s6;
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

	if (ss->ss_family != AF_INET6)
		return;
	memcpy(&s6, ss, sizeof s6);
	if (!IN6_IS_ADDR_V4MAPPED(&s6.sin6_addr))
		return;
	memset(ss, 0, sizeof *ss);
	s4->sin_family = AF_INET;
	s4->sin_port = s6.sin6_port;
	memcpy(&s4->sin_addr, s6.sin6_addr.s6_addr + 12, 4);
}

int
rpc_conn_peer_parse(const char *peer, struct sockaddr_storage *ss)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	char addr[INET6_ADDRSTRLEN + 8], *end;
	const char *s, *port;
	size_t n;
	long p;

	memset(ss, 0, sizeof *ss);
	if (peer == NULL || strlen(peer) < 6 ||
	    (port = strrchr(peer, ':')) == NULL || port < peer + 5)
		return -1;
	p = strtol(port + 1, &end, 10);
	if (end == port + 1 || *end != '\0' || p < 0 || p > 65535)
		return -1;
	if (strncmp(peer, "ipv4:", 5) == 0) {
		s = peer + 5;
		n = (size_t)(port - s);
	} else if (strncmp(peer, "ipv6:", 5) == 0) {
		/* "ipv6:[ADDR]:PORT", the brackets possibly %-encoded; a
		 * zone (%25eth0) is dropped. */
		s = peer + 5;
		s += strncmp(s, "%5B", 3) == 0 ? 3 : *s == '[';
		n = strcspn(s, "]%");
	} else
		return -1;
	if (n >= sizeof addr)
		return -1;
	memcpy(addr, s, n);
	addr[n] = '\0';
	if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)p);
		return 0;
	}
	if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)p);
		peer_unmap(ss);
		return 0;
	}
	return -1;
}

void
rpc_conn_addr_key(const struct sockaddr_storage *ss, char *key, size_t keylen)
{
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
	char addr[INET6_ADDRSTRLEN];
	struct in6_addr a6;

	if (ss->ss_family == AF_INET) {
		inet_ntop(AF_INET, &s4->sin_addr, addr, sizeof addr);
		snprintf(key, keylen, "ipv4:%s", addr);
		return;
	}
	if (ss->ss_family != AF_INET6) {
		snprintf(key, keylen, "?");
		return;
	}
	a6 = s6->sin6_addr;
	/* One host commonly holds a whole /64. */
	memset(a6.s6_addr + 8, 0, 8);
	inet_ntop(AF_INET6, &a6, addr, sizeof addr);
	snprintf(key, keylen, "ipv6:%s/64", addr);
}

/* Same address and port. */
static int
peer_eq(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	const struct sockaddr_in *a4 = (const void *)a, *b4 = (const void *)b;
	const struct sockaddr_in6 *a6 = (const void *)a, *b6 = (const void *)b;

	if (a->ss_family != b->ss_family)
		return 0;
	if (a->ss_family == AF_INET)
		return a4->sin_port == b4->sin_port &&
		    a4->sin_addr.s_addr == b4->sin_addr.s_addr;
	return a->ss_family == AF_INET6 && a6->sin6_port == b6->sin6_port &&
	    memcmp(&a6->sin6_addr, &b6->sin6_addr, sizeof a6->sin6_addr) == 0;
}

static unsigned
peer_hash(const struct sockaddr_storage *ss)
{
	const struct sockaddr_in *s4 = (const void *)ss;
	const struct sockaddr_in6 *s6 = (const void *)ss;
	const unsigned char *p;
	size_t n;
	uint32_t h = 2166136261u;    /* FNV-1a over the address and port */

	if (ss->ss_family == AF_INET) {
		p = (const unsigned char *)&s4->sin_addr;
		n = sizeof s4->sin_addr;
		h = (h ^ s4->sin_port) * 16777619u;
	} else {
		p = (const unsigned char *)&s6->sin6_addr;
		n = sizeof s6->sin6_addr;
		h = (h ^ s6->sin6_port) * 16777619u;
	}
	while (n--)
		h = (h ^ *p++) * 16777619u;
	return h % CONN_BUCKETS;
}

/* ------------------------------------------------------------------ */
/* The table (mutex held).                                              */

static void
conn_remove(struct rpc_conns *cs, struct conn *c)
{
	struct conn **pp = &cs->hash[peer_hash(&c->peer)];

	while (*pp && *pp != c)
		pp = &(*pp)->next;
	if (*pp)
		*pp = c->next;
	if (c->fd < cs->nbyfd && cs->byfd[c->fd] == c)
		cs->byfd[c->fd] = NULL;
	free(c);
}

/*
 * Close an accepted connection under gRPC's feet: shut it down, and read
 * away what the peer had queued, which the kernel would still hand gRPC
 * (every queued byte of a rapid-reset flood becomes a call). gRPC then
 * meets the end of the stream, or a TLS record cut short, and drops the
 * connection.
 */
static void
conn_close(int fd)
{
	char buf[16384];
	size_t total = 0;
	ssize_t n;

	shutdown(fd, SHUT_RDWR);
	while (total < CONN_DISCARD_MAX &&
	    (n = recv(fd, buf, sizeof buf, MSG_DONTWAIT)) > 0)
		total += (size_t)n;
}

static int
banned(struct rpc_conns *cs, const char *key, int64_t now)
{
	for (int i = 0; i < CONN_BANS; i++)
		if (cs->bans[i].until > now && strcmp(cs->bans[i].key, key) == 0)
			return 1;
	return 0;
}

/* Refuse key until `until`, in place of the ban that ends first. */
static void
ban(struct rpc_conns *cs, const char *key, int64_t until)
{
	struct ban *b = &cs->bans[0];

	for (int i = 0; i < CONN_BANS; i++) {
		if (strcmp(cs->bans[i].key, key) == 0) {
			b = &cs->bans[i];
			break;
		}
		if (cs->bans[i].until < b->until)
			b = &cs->bans[i];
	}
	snprintf(b->key, sizeof b->key, "%s", key);
	b->until = until;
}

static void
conns_log(struct rpc_conns *cs, const char *what, const char *key)
{
	int64_t now = sf_mono_ms();

	if (now - cs->logged_ms < LOG_EVERY_MS)
		return;
	log_warnx("listener %s: %s %s, which left too many calls without"
	    " their request message; its connections are refused for %d s"
	    " (since the last such line: %d closed, %d refused)", cs->name,
	    what, key, CONN_BAN_MS / 1000, cs->nclosed, cs->nrefused);
	cs->nclosed = cs->nrefused = 0;
	cs->logged_ms = now;
}

/* ------------------------------------------------------------------ */
/* The mutator gRPC calls.                                              */

/* Close every kept connection from the address key. */
static void
conns_close_addr(struct rpc_conns *cs, const char *key)
{
	char k[RPC_PEER_KEY_LEN];
	struct stat st;

	for (int i = 0; i < CONN_BUCKETS; i++) {
		struct conn *c = cs->hash[i], *next;

		for (; c; c = next) {
			next = c->next;
			rpc_conn_addr_key(&c->peer, k, sizeof k);
			if (strcmp(k, key) != 0)
				continue;
			if (fstat(c->fd, &st) == 0 && st.st_ino == c->ino)
				conn_close(c->fd);
			cs->nclosed++;
			conn_remove(cs, c);
		}
	}
}

static bool
conn_accepted(const mutate_info *info, grpc_socket_mutator *m)
{
	struct rpc_conns *cs = (struct rpc_conns *)m;
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	struct stat st;
	struct conn *c, **byfd;
	char key[RPC_PEER_KEY_LEN];
	int fd = info->fd;

	/* Never answer false: gRPC 1.51 then stops accepting on the port. */
	if (info->usage != 2 || fd < 0 ||
	    getpeername(fd, (struct sockaddr *)&ss, &len) != 0 ||
	    fstat(fd, &st) != 0)
		return true;
	peer_unmap(&ss);
	rpc_conn_addr_key(&ss, key, sizeof key);
	pthread_mutex_lock(&cs->mu);
	if (banned(cs, key, sf_mono_ms())) {
		shutdown(fd, SHUT_RDWR);
		cs->nrefused++;
		conns_log(cs, "refused a connection from", key);
		goto out;
	}
	if (fd < cs->nbyfd && cs->byfd[fd])
		conn_remove(cs, cs->byfd[fd]);   /* gRPC closed it */
	if (fd >= cs->nbyfd) {
		int n = fd + 64;

		if ((byfd = realloc(cs->byfd, (size_t)n * sizeof *byfd)) ==
		    NULL)
			goto out;
		memset(byfd + cs->nbyfd, 0,
		    (size_t)(n - cs->nbyfd) * sizeof *byfd);
		cs->byfd = byfd;
		cs->nbyfd = n;
	}
	if ((c = calloc(1, sizeof *c)) == NULL)
		goto out;
	c->fd = fd;
	c->ino = st.st_ino;
	c->peer = ss;
	c->next = cs->hash[peer_hash(&ss)];
	cs->hash[peer_hash(&ss)] = c;
	cs->byfd[fd] = c;
out:
	pthread_mutex_unlock(&cs->mu);
	return true;
}

static bool
conn_mutate_fd(int fd, grpc_socket_mutator *m)
{
	(void)fd;
	(void)m;
	return true;
}

static int
conn_compare(grpc_socket_mutator *a, grpc_socket_mutator *b)
{
	return a == b ? 0 : a < b ? -1 : 1;
}

static void
conn_destroy(grpc_socket_mutator *m)
{
	struct rpc_conns *cs = (struct rpc_conns *)m;

	for (int i = 0; i < CONN_BUCKETS; i++)
		while (cs->hash[i])
			conn_remove(cs, cs->hash[i]);
	pthread_mutex_destroy(&cs->mu);
	free(cs->byfd);
	free(cs->name);
	free(cs);
}

static const struct mutator_vtable conn_vtable = {
	conn_mutate_fd, conn_compare, conn_destroy, conn_accepted,
};

/* The channel argument's copies are references to the mutator. */
static void *
arg_copy(void *p)
{
	gpr_ref(&((grpc_socket_mutator *)p)->refcount);
	return p;
}

static void
arg_destroy(void *p)
{
	grpc_socket_mutator *m = p;

	if (gpr_unref(&m->refcount))
		m->vtable->destroy(m);
}

static int
arg_cmp(void *a, void *b)
{
	return conn_compare(a, b);
}

static const grpc_arg_pointer_vtable conn_arg_vtable = {
	arg_copy, arg_destroy, arg_cmp,
};

/* ------------------------------------------------------------------ */

int
rpc_conn_new(const char *name, struct rpc_conns **out)
{
	struct rpc_conns *cs;

	*out = NULL;
	if ((cs = calloc(1, sizeof *cs)) == NULL ||
	    (cs->name = strdup(name)) == NULL) {
		free(cs);
		return SF_ENOMEM;
	}
	cs->base.vtable = &conn_vtable;
	gpr_ref_init(&cs->base.refcount, 1);
	pthread_mutex_init(&cs->mu, NULL);
	cs->logged_ms = sf_mono_ms() - LOG_EVERY_MS;
	*out = cs;
	return 0;
}

void
rpc_conn_arg(struct rpc_conns *cs, grpc_arg *a)
{
	a->type = GRPC_ARG_POINTER;
	a->key = (char *)GRPC_ARG_SOCKET_MUTATOR;
	a->value.pointer.p = &cs->base;
	a->value.pointer.vtable = &conn_arg_vtable;
}

void
rpc_conn_strike(struct rpc_conns *cs, const struct sockaddr_storage *peer)
{
	struct conn *c;
	char key[RPC_PEER_KEY_LEN];
	int64_t now;

	if (cs == NULL)
		return;
	pthread_mutex_lock(&cs->mu);
	for (c = cs->hash[peer_hash(peer)]; c; c = c->next)
		if (peer_eq(&c->peer, peer))
			break;
	if (c == NULL)
		goto out;
	now = sf_mono_ms();
	if (now - c->since > CONN_WINDOW_MS) {
		c->since = now;
		c->strikes = 0;
	}
	if (++c->strikes < CONN_STRIKES)
		goto out;
	rpc_conn_addr_key(peer, key, sizeof key);
	ban(cs, key, now + CONN_BAN_MS);
	conns_close_addr(cs, key);
	conns_log(cs, "closed the connections of", key);
out:
	pthread_mutex_unlock(&cs->mu);
}

void
rpc_conn_free(struct rpc_conns *cs)
{
	if (cs)
		arg_destroy(&cs->base);
}
