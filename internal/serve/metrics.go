package serve

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/pglink/pglink/internal/failover"
	"github.com/pglink/pglink/internal/report"
	"github.com/pglink/pglink/internal/web"
)

// The metrics, each labelled by link. Values are read from the links'
// live views at scrape time (collector.Collect), so the data path pays
// nothing for them.
var (
	descInfo       = prometheus.NewDesc("pglink_link_info", "A link this process runs, with its source and target (user@host:port/db).", []string{"link", "source", "target"}, nil)
	descPhase      = prometheus.NewDesc("pglink_link_phase", "The link's phase as this process sees it: 1 for the current one, 0 for the others.", []string{"link", "phase"}, nil)
	descLagBytes   = prometheus.NewDesc("pglink_lag_bytes", "Source WAL not yet applied on the target, in bytes.", []string{"link"}, nil)
	descLagSeconds = prometheus.NewDesc("pglink_lag_seconds", "How far the target is behind the source, in seconds (0 when caught up).", []string{"link"}, nil)
	descTxns       = prometheus.NewDesc("pglink_applied_transactions_total", "Source transactions applied on the target by this process.", []string{"link"}, nil)
	descBatches    = prometheus.NewDesc("pglink_apply_batches_total", "Target transactions the apply committed, each holding one or more source transactions: rate(pglink_applied_transactions_total) / rate(pglink_apply_batches_total) is the batch size.", []string{"link"}, nil)
	descRows       = prometheus.NewDesc("pglink_applied_rows_total", "Row changes applied on the target by this process, by kind (insert, update, delete, truncate).", []string{"link", "kind"}, nil)
	descLastApply  = prometheus.NewDesc("pglink_last_apply_timestamp_seconds", "When the target last committed applied changes (Unix time).", []string{"link"}, nil)
	descSeedRows   = prometheus.NewDesc("pglink_seed_copied_rows", "Rows the seeding has copied.", []string{"link"}, nil)
	descSeedBytes  = prometheus.NewDesc("pglink_seed_copied_bytes", "Bytes the seeding has copied.", []string{"link"}, nil)
	descSeedLeft   = prometheus.NewDesc("pglink_seed_tables_left", "Tables the seeding has still to copy.", []string{"link"}, nil)
	descRetained   = prometheus.NewDesc("pglink_slot_retained_wal_bytes", "WAL the link's replication slot keeps on the source, in bytes.", []string{"link"}, nil)
	descWALWarn    = prometheus.NewDesc("pglink_slot_wal_warn_bytes", "The WAL guard's threshold: pglink warns when the slot retains more.", []string{"link"}, nil)
	descReconnects = prometheus.NewDesc("pglink_reconnects_total", "Times the link's work was started again after an error.", []string{"link"}, nil)
	descErrors     = prometheus.NewDesc("pglink_errors_total", "Errors that stopped the link's work.", []string{"link"}, nil)
	descFoState    = prometheus.NewDesc("pglink_failover_state", "The last failover of the link run by this process: 1 for its state (running, done, failed), 0 for the others.", []string{"link", "kind", "state"}, nil)
	descFoStep     = prometheus.NewDesc("pglink_failover_step", "The step of the last failover run by this process: 1 for the step running now, or where it ended; 0 for the others.", []string{"link", "step"}, nil)
	descDowntime   = prometheus.NewDesc("pglink_failover_downtime_seconds", "The write downtime of the last planned failover run by this process (from the source refusing writes to the target taking them).", []string{"link"}, nil)
)

// collector exports the links' live views, and the failovers run here.
type collector struct {
	links     func() []report.Live
	failovers func() []web.FailoverView
}

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descInfo, descPhase, descLagBytes, descLagSeconds, descTxns, descBatches, descRows, descLastApply,
		descSeedRows, descSeedBytes, descSeedLeft, descRetained, descWALWarn, descReconnects, descErrors,
		descFoState, descFoStep, descDowntime} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	for _, l := range c.links() {
		gauge(descInfo, 1, l.Name, l.Source, l.Target)
		for _, p := range report.LiveStates {
			gauge(descPhase, boolValue(p == l.State), l.Name, p)
		}
		if l.LagBytes != nil {
			gauge(descLagBytes, float64(*l.LagBytes), l.Name)
		}
		if l.LagSeconds != nil {
			gauge(descLagSeconds, *l.LagSeconds, l.Name)
		}
		counter(descTxns, float64(l.AppliedTxns), l.Name)
		counter(descBatches, float64(l.AppliedBatches), l.Name)
		for _, kind := range []string{"insert", "update", "delete", "truncate"} {
			counter(descRows, float64(l.AppliedRows[kind]), l.Name, kind)
		}
		if !l.LastAppliedAt.IsZero() {
			gauge(descLastApply, float64(l.LastAppliedAt.UnixNano())/1e9, l.Name)
		}
		gauge(descSeedRows, float64(l.SeedRowsCopied), l.Name)
		gauge(descSeedBytes, float64(l.SeedBytesCopied), l.Name)
		gauge(descSeedLeft, float64(l.SeedTablesLeft), l.Name)
		if l.SlotRetainedBytes != nil {
			gauge(descRetained, float64(*l.SlotRetainedBytes), l.Name)
			gauge(descWALWarn, float64(l.WALWarnBytes), l.Name)
		}
		counter(descReconnects, float64(l.Reconnects), l.Name)
		counter(descErrors, float64(l.Errors), l.Name)
	}
	if c.failovers == nil {
		return
	}
	for _, f := range c.failovers() {
		for _, st := range []string{"running", "done", "failed"} {
			gauge(descFoState, boolValue(f.State == st), f.Link, f.Kind, st)
		}
		at := failoverAt(f.Steps)
		for i, st := range f.Steps {
			gauge(descFoStep, boolValue(i == at), f.Link, st.ID)
		}
		if f.Result != nil && f.Result.DowntimeSeconds != nil {
			gauge(descDowntime, *f.Result.DowntimeSeconds, f.Link)
		}
	}
}

// failoverAt is the index of the step running now, or of the last one
// that ran.
func failoverAt(steps []web.PlanStep) int {
	at := -1
	for i, st := range steps {
		if st.State != "" && st.State != failover.StepSkipped {
			at = i
		}
		if st.State == failover.StepRunning {
			return i
		}
	}
	return at
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// newRegistry returns pglink's own registry (no process-global one): the
// links' metrics, and the process's and Go runtime's.
func newRegistry(links func() []report.Live, failovers func() []web.FailoverView) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{links: links, failovers: failovers},
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector())
	return reg
}
