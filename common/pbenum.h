/*
 * pbenum.h - short names for the secretfree.v1 enum values that code
 * stores and compares (device states, certificate statuses, enrollment
 * states). They are the generated protobuf-c constants themselves, so a
 * number can never drift from the .proto; only the spelling is shorter.
 * Include it only where the generated headers are available (proto_dep).
 */
#ifndef SF_PBENUM_H
#define SF_PBENUM_H

#include "secretfree/v1/common.pb-c.h"
#include "secretfree/v1/provisioning.pb-c.h"

/* secretfree.v1.DeviceState (common.proto) */
#define DEVICE_UNSPECIFIED \
	SECRETFREE__V1__DEVICE_STATE__DEVICE_STATE_UNSPECIFIED
#define DEVICE_REGISTERED SECRETFREE__V1__DEVICE_STATE__DEVICE_STATE_REGISTERED
#define DEVICE_ACTIVE SECRETFREE__V1__DEVICE_STATE__DEVICE_STATE_ACTIVE
#define DEVICE_DISABLED SECRETFREE__V1__DEVICE_STATE__DEVICE_STATE_DISABLED
#define DEVICE_REVOKED SECRETFREE__V1__DEVICE_STATE__DEVICE_STATE_REVOKED

/* secretfree.v1.CertificateStatus (common.proto) */
#define CERT_ACTIVE \
	SECRETFREE__V1__CERTIFICATE_STATUS__CERTIFICATE_STATUS_ACTIVE
#define CERT_PENDING_ACK \
	SECRETFREE__V1__CERTIFICATE_STATUS__CERTIFICATE_STATUS_PENDING_ACK
#define CERT_SUPERSEDED \
	SECRETFREE__V1__CERTIFICATE_STATUS__CERTIFICATE_STATUS_SUPERSEDED
#define CERT_REVOKED \
	SECRETFREE__V1__CERTIFICATE_STATUS__CERTIFICATE_STATUS_REVOKED
#define CERT_EXPIRED \
	SECRETFREE__V1__CERTIFICATE_STATUS__CERTIFICATE_STATUS_EXPIRED

/* secretfree.v1.EnrollmentState (provisioning.proto) */
#define ENROLLMENT_ISSUED \
	SECRETFREE__V1__ENROLLMENT_STATE__ENROLLMENT_STATE_ISSUED
#define ENROLLMENT_PENDING_ACK \
	SECRETFREE__V1__ENROLLMENT_STATE__ENROLLMENT_STATE_PENDING_ACK
#define ENROLLMENT_ACKNOWLEDGED \
	SECRETFREE__V1__ENROLLMENT_STATE__ENROLLMENT_STATE_ACKNOWLEDGED
#define ENROLLMENT_FAILED \
	SECRETFREE__V1__ENROLLMENT_STATE__ENROLLMENT_STATE_FAILED

#endif
