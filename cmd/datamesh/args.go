package main

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/datamesh/datamesh/schemas"
)

// positional is an Args validator that names the arguments in its errors:
// "append needs AGGREGATE ID TYPE [DATA]: missing TYPE". A name in brackets
// is optional; one ending in "..." takes any number of arguments.
func positional(names ...string) cobra.PositionalArgs {
	required, variadic := 0, false
	for _, n := range names {
		if !strings.HasPrefix(n, "[") {
			required++
		}
		if strings.HasSuffix(strings.TrimSuffix(n, "]"), "...") {
			variadic = true
		}
	}
	return func(cmd *cobra.Command, args []string) error {
		path := strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
		needs := fmt.Sprintf("%s needs %s", path, strings.Join(names, " "))
		if len(names) == 0 {
			needs = path + " takes no arguments"
		}
		switch {
		case len(args) < required:
			return fmt.Errorf("%s: missing %s", needs, strings.Join(names[len(args):required], " "))
		case !variadic && len(args) > len(names):
			return fmt.Errorf("%s: unexpected %s", needs, quoteAll(args[len(names):]))
		}
		return nil
	}
}

func quoteAll(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = fmt.Sprintf("%q", a)
	}
	return strings.Join(q, " ")
}

// groupCmd is a command that only holds subcommands: an unknown subcommand
// is an error that suggests the nearest, not the help with exit code 0.
func groupCmd(use, short string) *cobra.Command {
	return asGroup(&cobra.Command{Use: use, Short: short})
}

// asGroup makes cmd a command that only holds subcommands.
func asGroup(cmd *cobra.Command) *cobra.Command {
	// the subcommand's flags come after a subcommand that is not there
	cmd.FParseErrWhitelist = cobra.FParseErrWhitelist{UnknownFlags: true}
	cmd.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return nil
		}
		return unknownCommand(cmd, args[0])
	}
	cmd.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	return cmd
}

func unknownCommand(cmd *cobra.Command, name string) error {
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2
	}
	msg := fmt.Sprintf("unknown command %q for %q", name, cmd.CommandPath())
	if s := cmd.SuggestionsFor(name); len(s) > 0 {
		msg += fmt.Sprintf(": did you mean %s?", strings.Join(s, " or "))
	}
	return fmt.Errorf("%s (%s --help lists them)", msg, cmd.CommandPath())
}

var unknownFlagRE = regexp.MustCompile(`^unknown (?:shorthand )?flag: (?:'(.)' in -\S+|--?(\S+))`)

// flagError adds the nearest flag to an unknown flag error, and where to
// find the command's flags.
func flagError(cmd *cobra.Command, err error) error {
	m := unknownFlagRE.FindStringSubmatch(err.Error())
	if m == nil {
		return fmt.Errorf("%w (see %s --help)", err, cmd.CommandPath())
	}
	typed := m[1] + m[2]
	typed, _, _ = strings.Cut(typed, "=")
	if near := nearestFlag(cmd.Flags(), typed); near != "" {
		return fmt.Errorf("%w: did you mean --%s? (%s --help lists the flags)", err, near, cmd.CommandPath())
	}
	return fmt.Errorf("%w (%s --help lists the flags)", err, cmd.CommandPath())
}

// nearestFlag is the flag whose name is closest to typed (schemas.Nearest),
// or else the first that typed is a prefix of, or "".
func nearestFlag(fs *pflag.FlagSet, typed string) string {
	var names []string
	prefixed := ""
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		names = append(names, f.Name)
		if prefixed == "" && len(typed) > 1 && strings.HasPrefix(f.Name, typed) {
			prefixed = f.Name
		}
	})
	if near := schemas.Nearest(typed, names); near != "" {
		return near
	}
	return prefixed
}
