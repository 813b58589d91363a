// Package serve runs many links in one process, as a long-running service:
// the file that names them, a supervisor that runs each in its own
// goroutine and restarts it on failure, and the HTTP side (metrics and
// health).
package serve

import (
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	"github.com/pglink/pglink/internal/link"
	"github.com/pglink/pglink/internal/state"
)

// Spec is one link of the file: the link's options, as pglink start would
// have them from its flags. Source and Target have their ${ENV} variables
// expanded: they may hold passwords, and are never shown.
type Spec struct {
	Config link.Config
	Line   int // where the link's item starts in the file
}

// same says whether two specs run the same link the same way.
func (s Spec) same(o Spec) bool {
	a, b := s.Config, o.Config
	return a.Name == b.Name && a.Source == b.Source && a.Target == b.Target &&
		strings.Join(a.Tables, ",") == strings.Join(b.Tables, ",") &&
		strings.Join(a.ExcludeTables, ",") == strings.Join(b.ExcludeTables, ",") &&
		a.Jobs == b.Jobs && a.ApplySessions == b.ApplySessions && a.Schema == b.Schema &&
		a.TruncateExisting == b.TruncateExisting && a.WALWarnBytes == b.WALWarnBytes
}

// LoadFile reads and checks the file at path (see Parse).
func LoadFile(path string) ([]Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the links file: %w", err)
	}
	specs, err := Parse(data, os.LookupEnv)
	if err != nil {
		return nil, fmt.Errorf("%s:%w", path, err)
	}
	return specs, nil
}

// ConfigError is a mistake in the links file, at a line.
type ConfigError struct {
	Line int
	Msg  string
}

func (e *ConfigError) Error() string { return fmt.Sprintf("%d: %s", e.Line, e.Msg) }

func errAt(n *yaml.Node, format string, args ...any) error {
	return &ConfigError{Line: n.Line, Msg: fmt.Sprintf(format, args...)}
}

// Parse reads a links file: a top-level links: list whose items have
// name, source, target and any of pglink start's link flags under the
// same names. ${VAR} in source and target is replaced by the variable's
// value from lookup; a missing one is an error. The first mistake is
// returned, naming its line.
func Parse(data []byte, lookup func(string) (string, bool)) ([]Spec, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &ConfigError{Line: yamlErrLine(err), Msg: "not valid YAML: " + err.Error()}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, &ConfigError{Line: 1, Msg: "the file is empty: give a top-level links: list"}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, errAt(root, "expected a mapping with a links: list at the top")
	}
	var list *yaml.Node
	for i := 0; i < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Value != "links" {
			return nil, errAt(k, "unknown key %q at the top level: the file has only links:", k.Value)
		}
		list = v
	}
	if list == nil {
		return nil, errAt(root, "no links: list")
	}
	if list.Kind != yaml.SequenceNode {
		return nil, errAt(list, "links: must be a list of links (items starting with -)")
	}
	var specs []Spec
	seen := map[string]int{}
	for _, item := range list.Content {
		spec, err := parseLink(item, lookup)
		if err != nil {
			return nil, err
		}
		if line, dup := seen[spec.Config.Name]; dup {
			return nil, errAt(item, "link name %q is used twice (first at line %d): each link needs its own name", spec.Config.Name, line)
		}
		seen[spec.Config.Name] = item.Line
		specs = append(specs, spec)
	}
	return specs, nil
}

// parseLink reads one item of links:. Its options go through the flags
// of pglink start (link.AddFlags), so a key means what the flag means.
func parseLink(item *yaml.Node, lookup func(string) (string, bool)) (Spec, error) {
	if item.Kind != yaml.MappingNode {
		return Spec{}, errAt(item, "each link is a mapping with name, source and target")
	}
	spec := Spec{Line: item.Line}
	fs := pflag.NewFlagSet("link", pflag.ContinueOnError)
	link.AddFlags(fs, &spec.Config)
	var nameNode *yaml.Node
	for i := 0; i < len(item.Content); i += 2 {
		k, v := item.Content[i], item.Content[i+1]
		var err error
		switch k.Value {
		case "name":
			nameNode, spec.Config.Name, err = v, v.Value, scalar(k, v)
		case "source":
			spec.Config.Source, err = connString(k, v, lookup)
		case "target":
			spec.Config.Target, err = connString(k, v, lookup)
		default:
			err = setFlag(fs, k, v)
		}
		if err != nil {
			return Spec{}, err
		}
	}
	if nameNode == nil {
		return Spec{}, errAt(item, "a link without a name: give name: (lowercase letters, digits, underscores)")
	}
	if err := state.ValidateName(spec.Config.Name); err != nil {
		return Spec{}, errAt(nameNode, "%v", err)
	}
	for side, v := range map[string]string{"source": spec.Config.Source, "target": spec.Config.Target} {
		if v == "" {
			return Spec{}, errAt(item, "link %s has no %s: give %s: (a libpq URL like postgres://user@host:5432/db; ${VAR} takes a secret from the environment)", spec.Config.Name, side, side)
		}
	}
	if err := spec.Config.Check(); err != nil {
		return Spec{}, errAt(item, "link %s: %s", spec.Config.Name, strings.TrimPrefix(err.Error(), "--"))
	}
	return spec, nil
}

func scalar(k, v *yaml.Node) error {
	if v.Kind != yaml.ScalarNode {
		return errAt(v, "%s: give one value", k.Value)
	}
	return nil
}

// setFlag sets the link flag that key k names; a list sets it once per item.
func setFlag(fs *pflag.FlagSet, k, v *yaml.Node) error {
	f := fs.Lookup(k.Value)
	if f == nil {
		var keys []string
		fs.VisitAll(func(f *pflag.Flag) { keys = append(keys, f.Name) })
		return errAt(k, "unknown key %q: a link has name, source, target, %s", k.Value, strings.Join(keys, ", "))
	}
	values := []*yaml.Node{v}
	if v.Kind == yaml.SequenceNode {
		if !strings.HasSuffix(f.Value.Type(), "Slice") {
			return errAt(v, "%s: give one value, not a list", k.Value)
		}
		values = v.Content
	}
	for _, item := range values {
		if item.Kind != yaml.ScalarNode {
			return errAt(item, "%s: give a value or a list of values", k.Value)
		}
		if err := fs.Set(k.Value, item.Value); err != nil {
			return errAt(item, "%s: %v", k.Value, err)
		}
	}
	return nil
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// connString expands the ${VAR} references of a connection string.
func connString(k, v *yaml.Node, lookup func(string) (string, bool)) (string, error) {
	if err := scalar(k, v); err != nil {
		return "", err
	}
	var missing string
	out := envRef.ReplaceAllStringFunc(v.Value, func(ref string) string {
		name := envRef.FindStringSubmatch(ref)[1]
		val, ok := lookup(name)
		if !ok && missing == "" {
			missing = name
		}
		return val
	})
	if missing != "" {
		return "", errAt(v, "%s names the environment variable %s, which is not set: export it before pglink serve starts (or reloads)", k.Value, missing)
	}
	return out, nil
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

// yamlErrLine finds the line in a YAML syntax error, or 1.
func yamlErrLine(err error) int {
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		var n int
		fmt.Sscan(m[1], &n)
		return n
	}
	return 1
}
