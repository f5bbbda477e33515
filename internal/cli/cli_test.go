package cli

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func testTree(ran *[]string) *cobra.Command {
	root := &cobra.Command{Use: "tool"}
	sync := &cobra.Command{Use: "sync", RunE: func(cmd *cobra.Command, args []string) error {
		*ran = append(*ran, "sync "+strings.Join(args, " "))
		if fail, _ := cmd.Flags().GetBool("fail"); fail {
			return BadInputErr(errors.New("broken file"))
		}
		return nil
	}}
	sync.Flags().Bool("dry-run", false, "")
	sync.Flags().Bool("fail", false, "")
	sync.Flags().StringP("config", "c", "", "")
	root.AddCommand(sync, Group("deadletters", "dead letters", &cobra.Command{Use: "list", RunE: func(*cobra.Command, []string) error { return Exit(Failure) }}))
	return root
}

func TestLegacyLongFlags(t *testing.T) {
	root := testTree(new([]string))
	got := LegacyLongFlags(root, []string{"sync", "-dry-run", "-c", "x.yaml", "-config=y", "-zz", "--", "-dry-run"})
	want := []string{"sync", "--dry-run", "-c", "x.yaml", "--config=y", "-zz", "--", "-dry-run"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("LegacyLongFlags = %q, want %q", got, want)
	}
}

func TestExecuteExitCodes(t *testing.T) {
	cases := []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"sync", "a", "-dry-run"}, OK, ""},
		{[]string{"sync", "--fail"}, BadInput, "tool sync: broken file\n"},
		{[]string{"sync", "--dryrun"}, Usage, "Did you mean this?\n\t--dry-run"},
		{[]string{"sycn"}, Usage, "Did you mean this?\n\tsync"},
		{[]string{"deadletters"}, Usage, "missing subcommand: one of list"},
		{[]string{"deadletters", "lsit"}, Usage, "Did you mean this?\n\tlist"},
		{[]string{"deadletters", "list"}, Failure, ""},
	}
	for _, tc := range cases {
		var ran []string
		var out, errOut bytes.Buffer
		code := Execute(context.Background(), testTree(&ran), tc.args, &out, &errOut)
		if code != tc.code || !strings.Contains(errOut.String(), tc.stderr) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", tc.args, code, errOut.String(), tc.code, tc.stderr)
		}
		if tc.code == Failure && errOut.Len() != 0 {
			t.Errorf("%q: a silent exit printed %q", tc.args, errOut.String())
		}
	}
}

func TestDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"json", "json", 0}, {"jsn", "json", 1}, {"dryrun", "dry-run", 1}, {"kitten", "sitting", 3}} {
		if got := distance(c.a, c.b); got != c.d {
			t.Errorf("distance(%q, %q) = %d, want %d", c.a, c.b, got, c.d)
		}
	}
}
