package link

import "testing"

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1048576": 1 << 20, "512MB": 512 << 20, "2gb": 2 << 30, "1 TB": 1 << 40, "64kB": 64 << 10, "10B": 10} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "lots", "-1GB", "1.5GB"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) succeeded", in)
		}
	}
}

func TestCheckBinary(t *testing.T) {
	for _, v := range []string{"", BinaryAuto, BinaryOff} {
		if err := (&Config{Schema: SchemaCopy, ApplySessions: 2, Binary: v}).Check(); err != nil {
			t.Errorf("--binary %q: %v", v, err)
		}
	}
	if err := (&Config{Schema: SchemaCopy, ApplySessions: 2, Binary: "on"}).Check(); err == nil {
		t.Errorf("--binary on accepted")
	}
}
