package state

// Phase is where a link is in its life, as pglink.links.phase records it.
type Phase string

// Phases of a link.
const (
	PhaseSeeding     Phase = "seeding"
	PhaseReplicating Phase = "replicating"
	PhaseFailingOver Phase = "failing_over"
	PhaseFailedOver  Phase = "failed_over"
	PhaseBroken      Phase = "broken"
)

// TableState is how far a table's copy is, as pglink.tables.state records it.
type TableState string

// Table states.
const (
	TablePending TableState = "pending"
	TableCopying TableState = "copying"
	TableCopied  TableState = "copied"
)

// Event names a record of pglink.history.
type Event string

// Events of a link's history.
const (
	EventSlotCreated      Event = "slot_created"
	EventSeeded           Event = "seeded"
	EventAnalyzed         Event = "analyzed"
	EventMissingRoles     Event = "missing_roles"
	EventDatabaseSettings Event = "database_settings"
	EventMatViews         Event = "matviews_refreshed"
	EventFailoverStarted  Event = "failover started"
	EventFailoverUndone   Event = "failover undone"
	EventFailedOver       Event = "failed over"
	EventReverseSlot      Event = "reverse slot created"
	EventReversed         Event = "reverse link made"
)
