/*
 * auditchain.c - the audit trail's hash chain and its verification (see
 * auditchain.h).
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "auditchain.h"
#include "err.h"
#include "util.h"

const char *
audit_damage_name(int damage)
{
	switch (damage) {
	case AUDIT_INTACT: return "intact";
	case AUDIT_EDITED: return "edited";
	case AUDIT_DELETED: return "deleted";
	case AUDIT_INSERTED: return "inserted";
	case AUDIT_REORDERED: return "reordered";
	case AUDIT_CHECKPOINT: return "checkpoint";
	}
	return "?";
}

/*
 * SHA-256 fetched once: OpenSSL 3's implicit fetch (EVP_sha256() in
 * EVP_DigestInit_ex) costs more than hashing an event, and the journal's
 * triggers hash twice per certificate issued.
 */
static pthread_once_t sha_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha;

static void
sha_fetch(void)
{
	sha = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static const EVP_MD *
sha256(void)
{
	pthread_once(&sha_once, sha_fetch);
	return sha ? sha : EVP_sha256();
}

static void
hex32(const unsigned char *md, char out[65])
{
	static const char hx[] = "0123456789abcdef";

	for (int i = 0; i < 32; i++) {
		out[2 * i] = hx[md[i] >> 4];
		out[2 * i + 1] = hx[md[i] & 15];
	}
	out[64] = '\0';
}

int
audit_sha256_hex(const void *p, size_t n, char out[65])
{
	unsigned char md[32];

	if (!EVP_Digest(p, n, md, NULL, sha256(), NULL))
		return SF_ECRYPTO;
	hex32(md, out);
	return 0;
}

int
audit_chain_hash(const char *prev, int64_t seq, int64_t at,
    const char *kind, const char *subject, const char *detail, char out[65])
{
	unsigned char md[32];
	char nums[64];
	EVP_MD_CTX *ctx;
	int ok;

	snprintf(nums, sizeof nums, "\n%lld\t%lld\t", (long long)seq,
	    (long long)at);
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return SF_ENOMEM;
	ok = EVP_DigestInit_ex(ctx, sha256(), NULL) &&
	    EVP_DigestUpdate(ctx, prev, strlen(prev)) &&
	    EVP_DigestUpdate(ctx, nums, strlen(nums)) &&
	    EVP_DigestUpdate(ctx, kind, strlen(kind)) &&
	    EVP_DigestUpdate(ctx, "\t", 1) &&
	    EVP_DigestUpdate(ctx, subject, strlen(subject)) &&
	    EVP_DigestUpdate(ctx, "\t", 1) &&
	    EVP_DigestUpdate(ctx, detail, strlen(detail)) &&
	    EVP_DigestFinal_ex(ctx, md, NULL);
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return SF_ECRYPTO;
	hex32(md, out);
	return 0;
}

size_t
audit_checkpoint_text(int64_t seq, const char *head, int64_t at, char *buf,
    size_t len)
{
	int n = snprintf(buf, len, AUDIT_CHECKPOINT_MAGIC "\n%lld\n%s\n%lld\n",
	    (long long)seq, head, (long long)at);

	return n < 0 ? 0 : (size_t)n >= len ? len - 1 : (size_t)n;
}

void
audit_report_bad(audit_report *rep, int64_t seq, int damage,
    const char *fmt, ...)
{
	va_list ap;

	rep->first_bad = seq;
	rep->damage = damage;
	va_start(ap, fmt);
	vsnprintf(rep->problem, sizeof rep->problem, fmt, ap);
	va_end(ap);
}

/* Row r (seq == the one expected) does not verify; prev is the last good
 * event's hash. Say what happened. 0 or a callback's error. */
static int
classify(const audit_source *src, const audit_row *r, const char *prev,
    int self_ok, audit_report *rep)
{
	long long q = (long long)r->seq;
	char want[65], nprev[65];
	int64_t s = 0;
	int rc, has_next;

	if ((has_next = src->next_prev(src->arg, r->seq, nprev)) < 0)
		return has_next;
	if (src->end > 0 && r->seq > src->end) {
		audit_report_bad(rep, r->seq, AUDIT_INSERTED, "event %lld (%s"
		    " %s) was not written by the signer, whose last event is"
		    " %lld (inserted)", q, r->kind, r->subject,
		    (long long)src->end);
		return 0;
	}
	if (strcmp(r->prev, prev) == 0) {
		/* It chains, but its fields do not give its hash. */
		if (has_next && strcmp(nprev, r->prev) == 0)
			audit_report_bad(rep, r->seq, AUDIT_INSERTED, "event %lld"
			    " (%s %s) is not part of the chain: event %lld"
			    " chains to the event before it (inserted)", q,
			    r->kind, r->subject, q + 1);
		else
			audit_report_bad(rep, r->seq, AUDIT_EDITED, "event %lld"
			    " (%s %s) does not match its hash (edited)", q,
			    r->kind, r->subject);
		return 0;
	}
	/* It does not chain to the event before it. */
	if (audit_chain_hash(prev, r->seq, r->at, r->kind, r->subject,
	    r->detail, want) == 0 && strcmp(want, r->hash) == 0) {
		audit_report_bad(rep, r->seq, AUDIT_EDITED, "event %lld (%s %s):"
		    " its prev field was changed (edited)", q, r->kind,
		    r->subject);
		return 0;
	}
	if ((rc = src->find_hash(src->arg, r->prev, &s)) < 0)
		return rc;
	if (rc == 1 && s > r->seq) {
		audit_report_bad(rep, r->seq, AUDIT_REORDERED, "event %lld"
		    " (%s %s) chains to event %lld, which comes after it"
		    " (reordered)", q, r->kind, r->subject, (long long)s);
		return 0;
	}
	if (rc == 1 && s < r->seq - 1) {
		audit_report_bad(rep, s + 1, AUDIT_INSERTED, "event %lld chains"
		    " to event %lld: event%s %lld%s%.0lld were inserted", q,
		    (long long)s, s + 1 < r->seq - 1 ? "s" : "",
		    (long long)s + 1, s + 1 < r->seq - 1 ? ".." : "",
		    s + 1 < r->seq - 1 ? q - 1 : 0);
		return 0;
	}
	if (has_next && strcmp(nprev, prev) == 0) {
		audit_report_bad(rep, r->seq, AUDIT_INSERTED, "event %lld (%s"
		    " %s) is not part of the chain: event %lld chains to the"
		    " event before it (inserted)", q, r->kind, r->subject,
		    q + 1);
		return 0;
	}
	if (self_ok)
		audit_report_bad(rep, r->seq - 1, AUDIT_EDITED, "event %lld"
		    " does not chain to event %lld as it is now: event %lld was"
		    " edited and its hash recomputed", q, q - 1, q - 1);
	else
		audit_report_bad(rep, r->seq, AUDIT_DELETED, "event %lld (%s"
		    " %s) chains to an event that is not there: the event"
		    " before it was deleted and the events renumbered", q,
		    r->kind, r->subject);
	return 0;
}

int
audit_chain_verify(const audit_source *src, int64_t start,
    const char *start_prev, audit_report *rep)
{
	audit_row r;
	char prev[65], want[65];
	int64_t expect = start;
	int first = 1, rc;

	memset(rep, 0, sizeof *rep);
	sf_strlcpy(prev, start_prev ? start_prev : "", sizeof prev);
	while ((rc = src->next(src->arg, &r)) == 1) {
		long long q = (long long)r.seq;
		int self_ok;

		if (first && start_prev == NULL) {
			/* A partial export: trust where it starts. */
			expect = r.seq;
			sf_strlcpy(prev, r.prev, sizeof prev);
		}
		first = 0;
		rep->events++;
		if (r.seq < expect) {
			audit_report_bad(rep, r.seq, AUDIT_INSERTED, "event %lld"
			    " (%s %s) comes %s (inserted)", q, r.kind,
			    r.subject, r.seq < start ? "before the first event" :
			    "twice");
			return 0;
		}
		if (r.seq > expect) {
			int64_t s = 0;

			if ((rc = src->find_hash(src->arg, r.prev, &s)) < 0)
				return rc;
			if (rc == 1 && s > r.seq)
				audit_report_bad(rep, expect, AUDIT_REORDERED,
				    "event %lld is missing here: event %lld"
				    " chains to event %lld, which comes later"
				    " (reordered)", (long long)expect, q,
				    (long long)s);
			else
				audit_report_bad(rep, expect, AUDIT_DELETED,
				    "event%s %lld%s%.0lld %s missing (deleted)",
				    expect < r.seq - 1 ? "s" : "",
				    (long long)expect, expect < r.seq - 1 ?
				    ".." : "", expect < r.seq - 1 ? q - 1 : 0,
				    expect < r.seq - 1 ? "are" : "is");
			return 0;
		}
		if ((rc = audit_chain_hash(r.prev, r.seq, r.at, r.kind,
		    r.subject, r.detail, want)) != 0)
			return rc;
		self_ok = strcmp(want, r.hash) == 0;
		if (!self_ok || strcmp(r.prev, prev) != 0)
			return classify(src, &r, prev, self_ok, rep);
		sf_strlcpy(prev, r.hash, sizeof prev);
		rep->last_seq = r.seq;
		sf_strlcpy(rep->last_hash, r.hash, sizeof rep->last_hash);
		expect = r.seq + 1;
	}
	return rc < 0 ? rc : 0;
}
