package link

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pglink/pglink/internal/assess"
	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/endpoint"
)

// connectTarget connects to the target database, creating it when it does
// not exist yet (from the server's maintenance database); created says so.
func connectTarget(ctx context.Context, ep *endpoint.Endpoint) (conn *pgx.Conn, created bool, err error) {
	conn, err = pgx.ConnectConfig(ctx, ep.Config.Copy())
	if err == nil {
		return conn, false, nil
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "3D000" {
		return nil, false, ep.Explain(err)
	}
	db := pgx.Identifier{ep.Database()}.Sanitize()
	if err := adminExec(ctx, ep, "CREATE DATABASE "+db); err != nil {
		if ctx.Err() != nil {
			// The server may have made it before the cancel reached it:
			// an empty database, which the next start uses.
			return nil, false, fmt.Errorf("target: create database %q was cut short (it may exist now, empty; the next pglink start uses it): %w", ep.Database(), err)
		}
		return nil, false, fmt.Errorf("target: create database %q: %w (grant the user CREATEDB, or create the database first)", ep.Database(), err)
	}
	conn, err = pgx.ConnectConfig(ctx, ep.Config.Copy())
	if err != nil {
		// Nothing half-made stays: the database pglink just made goes.
		err = ep.Explain(err)
		if derr := adminExec(context.WithoutCancel(ctx), ep, "DROP DATABASE IF EXISTS "+db); derr != nil {
			err = fmt.Errorf("%w; the database %q pglink created could not be removed: %v", err, ep.Database(), derr)
		}
		return nil, false, err
	}
	return conn, true, nil
}

// adminExec runs sql in the target server's maintenance database.
func adminExec(ctx context.Context, ep *endpoint.Endpoint, sql string) error {
	admin, err := ep.WithDatabase("postgres").Connect(ctx)
	if err != nil {
		return fmt.Errorf("connect to database postgres: %w", err)
	}
	defer admin.Close(context.WithoutCancel(ctx))
	_, err = admin.Exec(ctx, sql)
	return err
}

// conflictingTables lists the tables that already exist on the target.
func conflictingTables(ctx context.Context, conn *pgx.Conn, tables []catalog.Table) ([]string, error) {
	return assess.ExistingTables(ctx, conn, tables)
}

// checkTarget finds what on the target blocks the link: the blockers of
// assess.CheckTarget, the checks pglink assess runs.
func checkTarget(ctx context.Context, conn *pgx.Conn, tables []catalog.Table, cfg Config, log *slog.Logger) ([]Problem, error) {
	fs, err := assess.CheckTarget(ctx, conn, tables, cfg.Schema, cfg.TruncateExisting)
	if err != nil {
		return nil, err
	}
	logWarnings(log, fs)
	return problems(fs), nil
}

// checkTargetRights refuses a target user that lacks a right the link
// needs there (assess.TargetRights), before anything is made on either
// side: a managed service's admin role is no superuser, and without the
// check it would fail half-way (the read-only default after the copy).
func checkTargetRights(ctx context.Context, conn *pgx.Conn, inDatabase bool) error {
	fs, err := assess.TargetRights(ctx, conn, inDatabase)
	if err != nil {
		return err
	}
	if probs := problems(fs); len(probs) > 0 {
		return &ProblemsError{Problems: probs}
	}
	return nil
}

// explainTargetRefusal says which rights the user lacks when the target
// refused pglink's session: session_replication_role is one of its startup
// settings, so a user who may not set it cannot even log in with it. The
// rights are read in a session without pglink's settings; err stands when
// none is missing.
func explainTargetRefusal(ctx context.Context, target string, err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
		return err
	}
	ep, perr := endpoint.Parse(endpoint.Target, target)
	if perr != nil {
		return err
	}
	inDatabase := true
	conn, cerr := pgx.ConnectConfig(ctx, ep.Config.Copy())
	if errors.As(cerr, &pgErr) && pgErr.Code == "3D000" {
		inDatabase = false
		conn, cerr = pgx.ConnectConfig(ctx, ep.WithDatabase("postgres").Config.Copy())
	}
	if cerr != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if rerr := checkTargetRights(ctx, conn, inDatabase); rerr != nil {
		return rerr
	}
	return err
}
