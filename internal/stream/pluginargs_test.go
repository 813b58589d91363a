package stream

import (
	"slices"
	"testing"
)

// TestPluginArgs checks pgoutput's options per server version: binary
// only when asked and the server has it (14+).
func TestPluginArgs(t *testing.T) {
	for _, c := range []struct {
		version int
		binary  bool
		want    []string
	}{
		{130000, true, []string{"proto_version '1'", `publication_names '"p"'`}},
		{140000, false, []string{"proto_version '2'", `publication_names '"p"'`, "streaming 'on'", "messages 'true'"}},
		{160000, true, []string{"proto_version '2'", `publication_names '"p"'`, "streaming 'on'", "messages 'true'", "binary 'true'"}},
	} {
		if got := pluginArgs(c.version, "p", c.binary); !slices.Equal(got, c.want) {
			t.Errorf("pluginArgs(%d, binary %v) = %q, want %q", c.version, c.binary, got, c.want)
		}
	}
}
