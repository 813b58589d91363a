package catalog

import "testing"

func TestDBSettingSQL(t *testing.T) {
	cases := []struct {
		s    DBSetting
		want string
	}{
		{DBSetting{Name: "work_mem", Value: "64MB"}, `ALTER DATABASE "app" SET "work_mem" TO '64MB'`},
		{DBSetting{Role: "web", Name: "myapp.tenant", Value: "it's"}, `ALTER ROLE "web" IN DATABASE "app" SET "myapp.tenant" TO 'it''s'`},
		{DBSetting{Name: "search_path", Value: `"$user", public, "odd ""x"" Schema"`}, `ALTER DATABASE "app" SET "search_path" TO '$user', 'public', 'odd "x" Schema'`},
		{DBSetting{Name: "search_path", Value: `a,b`}, `ALTER DATABASE "app" SET "search_path" TO 'a', 'b'`},
		{DBSetting{Name: "temp_tablespaces", Value: ``}, `ALTER DATABASE "app" SET "temp_tablespaces" TO ''`},
	}
	for _, c := range cases {
		if got := c.s.SQL("app"); got != c.want {
			t.Errorf("%+v: got %s, want %s", c.s, got, c.want)
		}
	}
}
