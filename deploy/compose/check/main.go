// Command check loads a compose file the way `docker compose config` does, with the
// compose-spec reference library that Docker Compose itself is built on (compose-go): YAML
// anchors and merges, ${VAR:-default} interpolation from the environment, the compose-spec
// JSON schema, and the consistency checks (services, volumes and networks that are used must
// be defined, depends_on targets must exist). It prints the resolved project as YAML and
// exits 1 with the loader's message when the file is not valid.
//
// No Docker engine or compose plugin is needed: tests/unit/test_deploy_manifests.py builds
// and runs it on deploy/compose/compose.yaml.
//
//	go run . ../compose.yaml
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: check COMPOSE_FILE")
		os.Exit(2)
	}
	path, err := filepath.Abs(os.Args[1])
	if err != nil {
		fail(err)
	}
	opts, err := cli.NewProjectOptions(
		[]string{path},
		cli.WithOsEnv,
		cli.WithWorkingDirectory(filepath.Dir(path)),
		cli.WithConsistency(true),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		fail(err)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		fail(err)
	}
	out, err := project.MarshalYAML()
	if err != nil {
		fail(err)
	}
	os.Stdout.Write(out)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "compose:", err)
	os.Exit(1)
}
