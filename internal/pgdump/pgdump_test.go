package pgdump

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestFind(t *testing.T) {
	ctx := context.Background()
	path, err := Find(ctx, 130000)
	if err != nil {
		t.Fatalf("a pg_dump for PostgreSQL 13: %v", err)
	}
	if major, err := Major(ctx, path); err != nil || major < 13 {
		t.Errorf("%s: version %d, %v", path, major, err)
	}
	_, err = Find(ctx, 990000)
	var nf *NotFoundError
	if !errors.As(err, &nf) || nf.Want != 99 || !strings.Contains(err.Error(), "PostgreSQL 99") || !strings.Contains(err.Error(), "at least as new") {
		t.Errorf("no pg_dump new enough: got %v", err)
	}
}
