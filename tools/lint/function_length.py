#!/usr/bin/env python3
"""Lists functions longer than a limit (CONTRIBUTING.md: functions under ~60 lines).

A brace walker, not a parser: a '{' opened directly inside a namespace, a class or the file, after a
')' (a parameter list, possibly followed by const/override/noexcept/a trailing return type or a
constructor's initialiser list), opens a function body; lambdas inside it count as its lines.
Usage: function_length.py [--max N] PATH...   (exit 1 when something is over)
"""
import re
import sys
from pathlib import Path

CONTROL = re.compile(r'\b(if|for|while|switch|catch|do|else)\s*(\(|$)')


def strip(text):
    # Comments, strings and character literals become blanks, keeping line breaks.
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith('//', i):
            j = text.find('\n', i)
            i = n if j < 0 else j
        elif text.startswith('/*', i):
            j = text.find('*/', i + 2)
            j = n if j < 0 else j + 2
            out.append('\n' * text.count('\n', i, j))
            i = j
        elif text.startswith('R"', i):
            m = re.match(r'R"([^(]*)\(', text[i:])
            end = text.find(')' + m.group(1) + '"', i) if m else -1
            j = n if end < 0 else end + len(m.group(1)) + 2
            out.append('""' + '\n' * text.count('\n', i, j))
            i = j
        elif c in '"\'':
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == '\\' else 1
            out.append(c + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return ''.join(out)


def functions(path):
    text = strip(path.read_text(errors='replace'))
    stack = []  # (kind, start_line, name)
    last = 0
    line = 1
    for i, c in enumerate(text):
        if c == '\n':
            line += 1
        elif c == '{':
            head = text[last:i]
            head_flat = ' '.join(head.split())
            enclosing = stack[-1][0] if stack else 'scope'
            kind = 'block'
            if enclosing in ('scope', 'class'):
                if re.search(r'\b(namespace|extern "")\b', head_flat) and not re.search(r'\)\s*$', head_flat):
                    kind = 'scope'
                elif re.search(r'\b(class|struct|union|enum)\b[^()]*$', head_flat):
                    kind = 'class'
                elif re.search(r'\)\s*(const|override|final|noexcept|mutable|\s|->\s*[\w:<>,\s*&]+)*$', head_flat) \
                        or re.search(r'\)\s*:\s*.*\)\s*$', head_flat):
                    if not CONTROL.search(head_flat.split(';')[-1]) and '=' not in head_flat.split(';')[-1].split('(')[0]:
                        kind = 'function'
            name = ''
            if kind == 'function':
                m = re.search(r'([~\w:]+(?:<[^()]*>)?|operator\S+)\s*\((?!.*\b\w+\s*\().*$', head_flat.split(';')[-1].split('}')[-1])
                name = m.group(1) if m else head_flat[-60:]
            stack.append((kind, line, name))
            last = i + 1
        elif c == '}':
            if stack:
                kind, start, name = stack.pop()
                if kind == 'function' and not any(k == 'function' for k, _, _ in stack):
                    yield name, start, line - start + 1
            last = i + 1
        elif c == ';':
            last = i + 1


def main(argv):
    limit, paths = 60, []
    it = iter(argv)
    for a in it:
        if a == '--max':
            limit = int(next(it))
        else:
            paths.append(Path(a))
    files = []
    for p in paths:
        files += sorted(p.rglob('*.cpp')) + sorted(p.rglob('*.hpp')) if p.is_dir() else [p]
    over = 0
    for f in files:
        for name, start, length in functions(f):
            if length > limit:
                over += 1
                print(f'{f}:{start}: {name} is {length} lines (limit {limit})')
    return 1 if over else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
