// Package matrix holds the version matrix test: a link from each supported
// source major version into each target it may move to, on the end-to-end
// test's hard-case fixture, finished by a planned failover. It has no code
// of its own; see matrix_test.go.
package matrix
