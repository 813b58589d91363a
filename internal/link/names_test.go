package link

import (
	"testing"

	"github.com/pglink/pglink/internal/state"
)

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"shop", "a", "shop_2026", "x123456789012345678901234567890123456789"} {
		if err := state.ValidateName(ok); err != nil {
			t.Errorf("ValidateName(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", "Shop", "1shop", "shop-db", "shop db", `x"`, "x1234567890123456789012345678901234567890"} {
		if err := state.ValidateName(bad); err == nil {
			t.Errorf("ValidateName(%q) = nil, want an error", bad)
		}
	}
}
