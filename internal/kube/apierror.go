package kube

import apierrors "k8s.io/apimachinery/pkg/api/errors"

// PermanentAPIError reports whether err is an API server answer that the
// same request will get again: forbidden, unauthorized, invalid or bad
// requests, and requests the server cannot take in that form. Executors
// fail such tasks at once; anything else (timeouts, throttling, conflicts,
// server errors) may pass on a retry.
func PermanentAPIError(err error) bool {
	return apierrors.IsForbidden(err) || apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) ||
		apierrors.IsMethodNotSupported(err) || apierrors.IsNotAcceptable(err) ||
		apierrors.IsUnsupportedMediaType(err) || apierrors.IsRequestEntityTooLargeError(err) ||
		apierrors.IsUnauthorized(err)
}
