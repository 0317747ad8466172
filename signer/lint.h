/*
 * lint.h - the signer's own certificate profiles, checked on every
 * certificate after it is complete and before the token signs it. A
 * certificate cannot be un-issued, only revoked: whatever bug put a wrong
 * field into it is caught here, and nothing is signed.
 *
 * Rules (the names the log and *rule carry):
 *   profile                  the journal profile names one of ours
 *   version                  X.509 v3
 *   serial                   positive, not zero, at most 20 octets
 *   signature-algorithm      the same algorithm in the TBS and outside it,
 *                            the one the issuer's key signs with, with the
 *                            parameters RFC 4055 / 5758 / 8410 give it
 *   issuer-name              the issuer's subject
 *   subject                  not empty
 *   validity                 notBefore before notAfter
 *   validity-in-issuer       inside the issuer's validity
 *   public-key               EC P-256/P-384, RSA or Ed25519
 *   duplicate-extension      no extension twice
 *   extension-not-in-profile nothing the profile does not have
 *   extension-missing        everything the profile requires
 *   criticality              critical: basicConstraints, keyUsage,
 *                            nameConstraints; every other one not
 *   basic-constraints        leaves cA FALSE without pathLen; CAs cA TRUE
 *                            within the issuer's pathLen
 *   key-usage                device/server digitalSignature (+
 *                            keyEncipherment for RSA keys only); CA
 *                            keyCertSign, cRLSign, digitalSignature; OCSP
 *                            responder digitalSignature
 *   extended-key-usage       device clientAuth, server serverAuth, OCSP
 *                            responder OCSPSigning: that one and no other
 *   subject-key-id           SHA-1 of the certificate's key bits
 *   authority-key-id         a keyIdentifier equal to the issuer's SKI
 *                            (a self-signed root: absent or its own)
 */
#ifndef SF_LINT_H
#define SF_LINT_H

#include <stddef.h>

#include <openssl/x509.h>

enum {
	LINT_NONE = 0,
	LINT_DEVICE,      /* "device:<product line>" */
	LINT_SERVER,      /* "server" */
	LINT_CA,          /* "ca": root, intermediate, issuing */
	LINT_OCSP,        /* "ocsp-responder": delegated OCSP responder */
};

/* The profile a journal profile name stands for; LINT_NONE if none. */
int lint_profile(const char *journal_profile);

/*
 * Check x, complete but for its signature value (both signature algorithm
 * fields set), against profile as issued by issuer (issuer == x: a
 * self-signed root). sig_nid is the algorithm the issuer's key signs with
 * (token_key_sig_nid). Reads x and issuer only; no cached extension data
 * is trusted (x was just built). 0; otherwise SF_EINTERNAL with *rule the
 * first broken rule's name (static) and why a sentence about it.
 */
int lint_cert(const X509 *x, int profile, const X509 *issuer, int sig_nid,
    const char **rule, char *why, size_t whylen);

#endif
