package seed

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/catalog"
)

// TestPostDataDependentStatements runs post-data with parallel sessions,
// again and again on fresh target databases, on objects whose statements
// depend on indexes built in the parallel phase: replica identity using an
// index or a unique constraint, CLUSTER ON, a constraint made USING INDEX,
// statistics targets and comments on indexes, partitioned indexes and
// constraints (on two levels) with their partitions' indexes attached, and
// a foreign key to a unique constraint. Each run must succeed and leave
// the target with the source's indexes, identities and attachments, also
// when the ordinary tables' builds run early (EarlyBuilds).
func TestPostDataDependentStatements(t *testing.T) {
	src, tgt := twoClusters(t)
	src.CreateDB("app")
	var ddl string
	for i := range 6 {
		ddl += fmt.Sprintf(`CREATE TABLE public.ri%[1]d (code text NOT NULL, v int, w int);
			CREATE UNIQUE INDEX ri%[1]d_code ON public.ri%[1]d (code);
			ALTER TABLE public.ri%[1]d REPLICA IDENTITY USING INDEX ri%[1]d_code;
			CREATE INDEX ri%[1]d_v ON public.ri%[1]d (v);
			ALTER TABLE public.ri%[1]d CLUSTER ON ri%[1]d_v;
			CREATE INDEX ri%[1]d_expr ON public.ri%[1]d ((v + w));
			ALTER INDEX public.ri%[1]d_expr ALTER COLUMN 1 SET STATISTICS 500;
			COMMENT ON INDEX public.ri%[1]d_code IS 'identity %[1]d';
			CREATE TABLE public.uc%[1]d (id int NOT NULL, code text NOT NULL);
			CREATE UNIQUE INDEX uc%[1]d_idx ON public.uc%[1]d (id);
			ALTER TABLE public.uc%[1]d ADD CONSTRAINT uc%[1]d_pk PRIMARY KEY USING INDEX uc%[1]d_idx;
			ALTER TABLE public.uc%[1]d ADD CONSTRAINT uc%[1]d_code UNIQUE (code);
			ALTER TABLE public.uc%[1]d REPLICA IDENTITY USING INDEX uc%[1]d_code;
			ALTER TABLE public.uc%[1]d CLUSTER ON uc%[1]d_pk;
			CREATE TABLE public.fk%[1]d (code text REFERENCES public.uc%[1]d (code), during int4range,
				EXCLUDE USING gist (during WITH &&));
			`, i)
	}
	ddl += `CREATE TABLE public.parted (at date NOT NULL, id int NOT NULL, k text NOT NULL,
			PRIMARY KEY (at, id), UNIQUE (at, k)) PARTITION BY RANGE (at);
		CREATE TABLE public.parted_a PARTITION OF public.parted FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
		CREATE TABLE public.parted_b PARTITION OF public.parted FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
		CREATE TABLE public.parted_c PARTITION OF public.parted FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')
			PARTITION BY HASH (at);
		CREATE TABLE public.parted_c0 PARTITION OF public.parted_c FOR VALUES WITH (MODULUS 2, REMAINDER 0);
		CREATE TABLE public.parted_c1 PARTITION OF public.parted_c FOR VALUES WITH (MODULUS 2, REMAINDER 1);
		CREATE INDEX parted_id ON public.parted (id);
		CREATE UNIQUE INDEX parted_ident ON public.parted (at, id, k);
		ALTER TABLE public.parted_a REPLICA IDENTITY USING INDEX parted_a_at_id_k_idx;
		ALTER TABLE public.parted_b CLUSTER ON parted_b_id_idx;
		COMMENT ON INDEX public.parted_id IS 'partitioned';`
	src.Exec("app", ddl)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	tables, err := catalog.Tables(ctx, src.Connect("app"), catalog.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	// Every index of the public schema: validity (a partitioned index is
	// valid once all its partitions' indexes are attached), identity,
	// clustering, key, its parent index, statistics targets and comment;
	// then every table's replica identity and constraints.
	const state = `SELECT concat_ws(E'\n', (SELECT string_agg(format('%s:%s%s%s%s parent=%s stats=%s comment=%s',
			i.indexrelid::regclass, i.indisvalid, i.indisreplident, i.indisclustered, i.indisprimary,
			(SELECT inhparent::regclass FROM pg_inherits WHERE inhrelid = i.indexrelid),
			(SELECT string_agg(attstattarget::text, ' ' ORDER BY attnum) FROM pg_attribute WHERE attrelid = i.indexrelid),
			obj_description(i.indexrelid, 'pg_class')), E'\n' ORDER BY i.indexrelid::regclass::text)
		FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
		WHERE c.relnamespace = 'public'::regnamespace),
		(SELECT string_agg(format('%s:%s', oid::regclass, relreplident), ' ' ORDER BY oid::regclass::text)
		FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p')),
		(SELECT string_agg(format('%s.%s:%s:%s', conrelid::regclass, conname, contype, conindid::regclass), ' '
			ORDER BY conrelid::regclass::text, conname)
		FROM pg_constraint WHERE connamespace = 'public'::regnamespace))`
	want := src.QueryString("app", state)
	for run := range 5 {
		db := fmt.Sprintf("run%d", run)
		tgt.CreateDB(db)
		opts := SchemaOptions{Source: src.URL("app"), Target: tgt.URL(db), Tables: tables}
		if _, err := PreData(ctx, opts); err != nil {
			t.Fatalf("run %d: pre-data: %v", run, err)
		}
		if run%2 == 1 {
			// Odd runs build each ordinary table's indexes and keys
			// early, as a copy does when the table is copied, and
			// post-data does the rest.
			early := opts
			early.Dumped = DumpAhead(ctx, opts, "post-data")
			eb := StartEarlyBuilds(ctx, early, 2, len(tables)+1) // one table still copies
			for _, tb := range tables {
				eb.TableCopied(tb)
			}
			<-early.Dumped.Done()
			time.Sleep(200 * time.Millisecond) // the builds get under way before Finish
			built, err := eb.Finish()
			if err != nil {
				t.Fatalf("run %d: early builds: %v", run, err)
			}
			if len(built) == 0 {
				t.Fatalf("run %d: nothing was built early", run)
			}
			opts.Dumped, opts.Built = early.Dumped, built
		}
		rep, err := PostData(ctx, opts, 4)
		if err != nil {
			t.Fatalf("run %d: post-data: %v", run, err)
		}
		if len(rep.Skipped) > 0 {
			t.Errorf("run %d: skipped %q", run, rep.Skipped)
		}
		if got := tgt.QueryString(db, state); got != want {
			t.Fatalf("run %d: on the target\n%s\nwant\n%s", run, got, want)
		}
	}
}

// TestSplitPostData: only the statements that build an index or key on
// their own run in parallel; all others keep pg_dump's order for later.
func TestSplitPostData(t *testing.T) {
	script := `SET statement_timeout = 0;
SELECT pg_catalog.set_config('search_path', '', false);

--
-- Name: c cu; Type: CONSTRAINT; Schema: public; Owner: bob
--

ALTER TABLE ONLY public.c
    ADD CONSTRAINT cu UNIQUE (id);

ALTER TABLE ONLY public.c REPLICA IDENTITY USING INDEX cu;

--
-- Name: parted parted_pkey; Type: CONSTRAINT; Schema: public; Owner: bob
--

ALTER TABLE ONLY public.parted
    ADD CONSTRAINT parted_pkey PRIMARY KEY (at, id);

--
-- Name: Odd "T k"; Type: CONSTRAINT; Schema: Odd; Owner: bob
--

ALTER TABLE ONLY "Odd"."T" ADD CONSTRAINT "T k" UNIQUE NULLS NOT DISTINCT (a);

--
-- Name: r r_ex; Type: CONSTRAINT; Schema: public; Owner: bob
--

ALTER TABLE ONLY public.r
    ADD CONSTRAINT r_ex EXCLUDE USING gist (during WITH &&);

--
-- Name: uc uc_pk; Type: CONSTRAINT; Schema: public; Owner: bob
--

ALTER TABLE public.uc ADD CONSTRAINT uc_pk PRIMARY KEY USING INDEX uc_idx;

ALTER TABLE public.uc CLUSTER ON uc_pk;

--
-- Name: payments_identity; Type: INDEX; Schema: billing; Owner: bob
--

CREATE UNIQUE INDEX payments_identity ON billing.payments USING btree (invoice_number, seq);

ALTER TABLE ONLY billing.payments REPLICA IDENTITY USING INDEX payments_identity;

--
-- Name: INDEX payments_identity; Type: COMMENT; Schema: billing; Owner: bob
--

COMMENT ON INDEX billing.payments_identity IS 'x';

--
-- Name: parted_id; Type: INDEX; Schema: public; Owner: bob
--

CREATE INDEX parted_id ON ONLY public.parted USING btree (id);

--
-- Name: ri_expr; Type: INDEX; Schema: public; Owner: bob
--

CREATE INDEX ri_expr ON public.ri USING btree (((v + w)));

ALTER INDEX public.ri_expr ALTER COLUMN 1 SET STATISTICS 500;

--
-- Name: parted_a_id_idx; Type: INDEX ATTACH; Schema: public; Owner: -
--

ALTER INDEX public.parted_id ATTACH PARTITION public.parted_a_id_idx;

--
-- Name: fk fk_code_fkey; Type: FK CONSTRAINT; Schema: public; Owner: bob
--

ALTER TABLE ONLY public.fk
    ADD CONSTRAINT fk_code_fkey FOREIGN KEY (code) REFERENCES public.c(code);
`
	preamble, parallel, serial := splitPostData(splitScript(script))
	sqls := func(stmts []statement) (out []string) {
		for _, s := range stmts {
			out = append(out, strings.Join(strings.Fields(s.SQL), " "))
		}
		return out
	}
	check := func(what string, got, want []string) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n%s\nwant\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	check("preamble", sqls(preamble), []string{"SET statement_timeout = 0",
		"SELECT pg_catalog.set_config('search_path', '', false)"})
	check("parallel", sqls(parallel), []string{
		"ALTER TABLE ONLY public.c ADD CONSTRAINT cu UNIQUE (id)",
		"ALTER TABLE ONLY public.parted ADD CONSTRAINT parted_pkey PRIMARY KEY (at, id)",
		`ALTER TABLE ONLY "Odd"."T" ADD CONSTRAINT "T k" UNIQUE NULLS NOT DISTINCT (a)`,
		"ALTER TABLE ONLY public.r ADD CONSTRAINT r_ex EXCLUDE USING gist (during WITH &&)",
		"CREATE UNIQUE INDEX payments_identity ON billing.payments USING btree (invoice_number, seq)",
		"CREATE INDEX parted_id ON ONLY public.parted USING btree (id)",
		"CREATE INDEX ri_expr ON public.ri USING btree (((v + w)))",
	})
	check("serial", sqls(serial), []string{
		"ALTER TABLE ONLY public.c REPLICA IDENTITY USING INDEX cu",
		"ALTER TABLE public.uc ADD CONSTRAINT uc_pk PRIMARY KEY USING INDEX uc_idx",
		"ALTER TABLE public.uc CLUSTER ON uc_pk",
		"ALTER TABLE ONLY billing.payments REPLICA IDENTITY USING INDEX payments_identity",
		"COMMENT ON INDEX billing.payments_identity IS 'x'",
		"ALTER INDEX public.ri_expr ALTER COLUMN 1 SET STATISTICS 500",
		"ALTER INDEX public.parted_id ATTACH PARTITION public.parted_a_id_idx",
		"ALTER TABLE ONLY public.fk ADD CONSTRAINT fk_code_fkey FOREIGN KEY (code) REFERENCES public.c(code)",
	})
}

// TestBuiltTable names the table of each build statement pg_dump writes,
// quoted or not, and none for the statements that are not builds.
func TestBuiltTable(t *testing.T) {
	for _, c := range []struct {
		typ, sql, want string
	}{
		{"INDEX", `CREATE INDEX i ON public.t USING btree (v)`, "public\x00t"},
		{"INDEX", `CREATE UNIQUE INDEX "Odd ""i""" ON ONLY "My Schema"."T.x" USING btree (v)`, "My Schema\x00T.x"},
		{"CONSTRAINT", `ALTER TABLE ONLY public.pgbench_accounts
    ADD CONSTRAINT pgbench_accounts_pkey PRIMARY KEY (aid)`, "public\x00pgbench_accounts"},
		{"CONSTRAINT", `ALTER TABLE Sales.Orders ADD CONSTRAINT u UNIQUE (a)`, "sales\x00orders"},
		{"INDEX", `CREATE INDEX i ON t USING btree (v)`, ""},
		{"INDEX", `ALTER INDEX public.i ATTACH PARTITION public.j`, ""},
	} {
		got, ok := builtTable(statement{SQL: c.sql, Type: c.typ})
		if got != c.want || ok != (c.want != "") {
			t.Errorf("builtTable(%q) = %q, %v; want %q", c.sql, got, ok, c.want)
		}
	}
}
