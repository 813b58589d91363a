package state

import (
	"fmt"
	"regexp"
)

var validName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,39}$`)

// ValidateName checks a link name. The name becomes part of the slot,
// publication and origin names, which PostgreSQL limits to lowercase
// letters, digits and underscores (slots) and 63 bytes.
func ValidateName(name string) error {
	if name == "" {
		return fmt.Errorf("no link name: give --name or set PGLINK_NAME (lowercase letters, digits and underscores, starting with a letter, at most 40 characters)")
	}
	if !validName.MatchString(name) {
		return fmt.Errorf("invalid link name %q: use lowercase letters, digits and underscores, starting with a letter, at most 40 characters (it names the replication slot, publication and origin)", name)
	}
	return nil
}

// Names are the names of what a link creates.
type Names struct {
	Slot        string // on the source
	SyncSlot    string // temporary slot on the source, for re-seeding after a restart
	Publication string // on the source
	Origin      string // on the target
	Origin2     string // on the target: the apply's second session's (a character no link name has keeps it apart from other links')
	Link        string // the link's name
	Trigger     string // the read-only guard trigger on each target table
	LockKey     string // advisory lock key text for the lease
}

func NamesFor(link string) Names {
	return Names{
		Link:        link,
		Slot:        "pglink_" + link,
		SyncSlot:    "pglink_" + link + "_sync",
		Publication: "pglink_" + link,
		Origin:      "pglink_" + link,
		Origin2:     "pglink_" + link + ".2",
		Trigger:     "pglink_read_only_" + link,
		LockKey:     "pglink link " + link,
	}
}
