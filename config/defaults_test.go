package config

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestDefaultsLiveInConfig enforces that this package is the one place a default value lives:
// no other package of the product declares a Default* constant or variable, or a function that
// fills in defaults (setDefaults, WithDefaults, Defaults). Packages take complete options from
// the daemon; their constructors validate them. The simulators under sim/ stand for MISP and
// Sentinel and keep those systems' own defaults.
func TestDefaultsLiveInConfig(t *testing.T) {
	root := ".."
	var found []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if path == root {
				return nil
			}
			if rel == "config" || rel == "sim" || strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		pkg := f.Name.Name
		for _, decl := range f.Decls {
			switch decl := decl.(type) {
			case *ast.GenDecl:
				if decl.Tok != token.CONST && decl.Tok != token.VAR {
					continue
				}
				for _, spec := range decl.Specs {
					for _, name := range spec.(*ast.ValueSpec).Names {
						if strings.HasPrefix(name.Name, "Default") {
							found = append(found, pkg+"."+name.Name+" ("+rel+")")
						}
					}
				}
			case *ast.FuncDecl:
				if !strings.Contains(strings.ToLower(decl.Name.Name), "defaults") {
					continue
				}
				name := pkg + "." + decl.Name.Name
				if decl.Recv != nil && len(decl.Recv.List) == 1 {
					name = pkg + ".(" + receiverType(decl.Recv.List[0].Type) + ")." + decl.Name.Name
				}
				found = append(found, name+" ("+rel+")")
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(found)
	for _, f := range found {
		t.Errorf("%s declares a default outside config/defaults.go: put the value there and let the daemon pass it", f)
	}
}

func receiverType(e ast.Expr) string {
	if star, ok := e.(*ast.StarExpr); ok {
		e = star.X
	}
	if id, ok := e.(*ast.Ident); ok {
		return id.Name
	}
	return "?"
}
