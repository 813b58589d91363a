package state

// Phases of a link, stored in the target's pglink schema.
const (
	PhaseSeeding     = "seeding"
	PhaseReplicating = "replicating"
	PhaseFailingOver = "failing_over"
	PhaseFailedOver  = "failed_over"
	PhaseBroken      = "broken"
)

// Table states.
const (
	TablePending = "pending"
	TableCopying = "copying"
	TableCopied  = "copied"
)
