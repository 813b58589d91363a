package demo

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/compare"
	"github.com/pglink/pglink/internal/pgtest"
)

func TestCreateShopAndWorkload(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	c.CreateDB("shop")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := CreateShop(ctx, c.Connect("shop"), 200); err != nil {
		t.Fatal(err)
	}
	for sql, want := range map[string]string{
		"SELECT count(*) FROM shop.customers":                                        "200",
		"SELECT count(*) FROM shop.order_items":                                      "1200",
		`SELECT count(*) FROM "Audit"."Events"`:                                      "101",
		"SELECT count(*) > 0 FROM shop.products WHERE weight_kg = 'Infinity'":        "true", // PostgreSQL 15
		"SELECT count(*) > 0 FROM billing.payments WHERE amount = 'NaN'":             "true",
		"SELECT relreplident FROM pg_class WHERE oid = 'billing.payments'::regclass": "i",
		`SELECT relreplident FROM pg_class WHERE oid = '"Audit"."Events"'::regclass`: "f",
		// the large descriptions must live in the TOAST table
		"SELECT pg_relation_size(reltoastrelid) > 0 FROM pg_class WHERE oid = 'shop.products'::regclass": "true",
		"SELECT count(*) FROM pg_inherits WHERE inhparent = 'shop.orders'::regclass":                     "25",
	} {
		if got := c.QueryString("shop", sql); got != want {
			t.Errorf("%s = %s, want %s", sql, got, want)
		}
	}

	w := NewWorkload(c.URL("shop"), 3)
	runCtx, stop := context.WithTimeout(ctx, 2*time.Second)
	defer stop()
	if err := w.Run(runCtx); err != nil {
		t.Fatalf("workload: %v", err)
	}
	if w.Committed() == 0 {
		t.Fatal("workload committed no transaction")
	}
	t.Logf("workload: %d committed, %d conflicts", w.Committed(), w.Conflicts())
	if err := NewWorkload(c.URL("shop"), 1).Run(runCtx); err != nil {
		t.Fatalf("a workload whose context has ended: %v, want nil", err)
	}
	reviewed, _ := strconv.Atoi(c.QueryString("shop", `SELECT count(*) FROM "Audit"."Events" WHERE "Action" IN ('REVIEWED', 'UPDATE')`))
	if reviewed == 0 {
		t.Error("no audit events left or made by the trigger")
	}
}

// TestShopIsDeterministic makes two shops of one scale and compares them:
// the demo relies on nothing random in the seed data.
func TestShopIsDeterministic(t *testing.T) {
	a, b := pgtest.Start(t, pgtest.Options{}), pgtest.Start(t, pgtest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range []*pgtest.Cluster{a, b} {
		c.CreateDB("shop")
		if err := CreateShop(ctx, c.Connect("shop"), 100); err != nil {
			t.Fatal(err)
		}
	}
	res, err := compare.Databases(ctx, a.Connect("shop"), b.Connect("shop"))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Equal() || res.Tables != 7 {
		t.Fatalf("two shops of one scale differ or miss tables:\n%s", res)
	}
}
