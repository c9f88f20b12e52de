#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The source's shape, checked (issue 12):

1. the library (src/shared/) includes no front end's header (src/sysext-idmap/, src/pam/, …), and a
   front end includes only the library's headers and its own;
2. the library's headers include each other without a cycle, so they form layers (--layers prints
   them, lowest first), and foo.c includes no header that stands on its own foo.h (a higher layer)
   but foo's own parts (foo-*.h);
3. no function is longer than MAX_LINES lines, except the few allowed below (option parsers).

Usage: check-shape.py [--layers] [SOURCE_ROOT]. Prints one line per violation and exits 1 if there
is any. Function bodies are found the way the house style writes them: a definition starts at
column 0 and ends with the first "}" at column 0 after it.
"""
import os
import re
import sys

MAX_LINES = 80
LONG_FUNCTIONS_ALLOWED = {('src/sysext-idmap/main.c', 'parse_argv')}
LIBRARY = 'src'+os.sep+'shared'

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
# A definition's first line: at column 0, a type and a name followed by "(" (the parameter list may
# go on over the next lines until the line that ends with "{").
DEFINITION = re.compile(r'^(?!typedef\b|struct\b|enum\b|union\b)[A-Za-z_][^;{}()=]*?\b([A-Za-z_]\w*)\s*\(')


def sources(root):
    for d, _, files in os.walk(os.path.join(root, 'src')):
        for f in sorted(files):
            if f.endswith(('.c', '.h')):
                yield os.path.relpath(os.path.join(d, f), root)


def module(path):
    return os.path.splitext(os.path.basename(path))[0]


def check_includes(root, files, problems):
    """Returns the library's header graph {header: set(headers it includes)} and each library .c
    file's includes {file: set(headers)}; records includes of front-end headers."""
    lib_headers = {os.path.basename(f) for f in files if f.startswith(LIBRARY + os.sep) and f.endswith('.h')}
    graph, c_includes = {}, {}
    for f in files:
        text = open(os.path.join(root, f), encoding='utf-8').read()
        incs = [i for i in INCLUDE.findall(text) if i != 'config.h']
        if not f.startswith(LIBRARY + os.sep):
            own = {os.path.basename(g) for g in files if os.path.dirname(g) == os.path.dirname(f)}
            for inc in incs:
                if inc not in lib_headers and inc not in own:
                    problems.append(f'{f}: includes "{inc}", neither a library header nor one of its own front end\'s')
            continue
        for inc in incs:
            if inc not in lib_headers:
                problems.append(f'{f}: includes "{inc}", which is not a library header (a front end\'s?)')
        known = {i for i in incs if i in lib_headers}
        if f.endswith('.h'):
            graph[os.path.basename(f)] = known - {os.path.basename(f)}
        else:
            c_includes[f] = known
    return graph, c_includes


def layers(graph, problems):
    """Kahn's algorithm over the headers: a header goes into the next layer once all it includes
    are placed. A header left over sits on an include cycle."""
    placed, result = set(), []
    while len(placed) < len(graph):
        layer = sorted(h for h in graph if h not in placed and graph[h] <= placed)
        if not layer:
            rest = sorted(h for h in graph if h not in placed)
            problems.append('src/shared: include cycle among ' + ', '.join(rest))
            break
        result.append(layer)
        placed |= set(layer)
    return result


def closure(graph, header):
    seen, todo = set(), [header]
    while todo:
        for h in graph.get(todo.pop(), ()):
            if h not in seen:
                seen.add(h)
                todo.append(h)
    return seen


def check_layering(graph, c_includes, problems):
    """foo.c implements foo.h: it must not include a header that itself stands on foo.h (a higher
    layer), unless that header is one of foo's own parts (foo-*.h, e.g. verity-internal.h)."""
    for f, incs in sorted(c_includes.items()):
        own = module(f) + '.h'
        if own not in graph:
            continue
        for h in sorted(incs):
            if h != own and own in closure(graph, h) and not h.startswith(module(f) + '-'):
                problems.append(f'{f}: includes "{h}", a higher layer than its own "{own}"')


def opens_body(lines, i):
    """Whether the declaration starting at lines[i] is a definition: "{" ends it before any ";"."""
    for line in lines[i:i + 8]:
        stripped = line.rstrip()
        if stripped.endswith('{'):
            return True
        if stripped.endswith(';') or stripped.endswith('}'):
            return False
    return False


def check_functions(root, files, problems):
    for f in files:
        if not f.endswith('.c'):
            continue
        lines = open(os.path.join(root, f), encoding='utf-8').read().split('\n')
        start = name = None
        for i, line in enumerate(lines):
            if start is None:
                m = DEFINITION.match(line)
                if m and opens_body(lines, i):
                    start, name = i, m.group(1)
            elif line.startswith('}'):
                n = i - start + 1
                if n > MAX_LINES and (f, name) not in LONG_FUNCTIONS_ALLOWED:
                    problems.append(f'{f}:{start + 1}: {name}() has {n} lines (at most {MAX_LINES})')
                start = None


def main(argv):
    show = '--layers' in argv
    args = [a for a in argv if a != '--layers']
    root = args[0] if args else os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
    files = list(sources(root))
    if not files:
        print(f'{root}: no sources found', file=sys.stderr)
        return 1
    problems = []
    graph, c_includes = check_includes(root, files, problems)
    result = layers(graph, problems)
    check_layering(graph, c_includes, problems)
    check_functions(root, files, problems)
    if show:
        for n, layer in enumerate(result):
            print(f'layer {n}: ' + ' '.join(h[:-2] for h in layer))
    for p in problems:
        print(p)
    print(f'{len(files)} files, {len(graph)} library headers in {len(result)} layers, {len(problems)} problem(s)')
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
