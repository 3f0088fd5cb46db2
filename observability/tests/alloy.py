"""A small parser for the Alloy configuration syntax (blocks, attributes, strings, numbers, lists,
objects and references): enough to check what the config declares, since Alloy itself does not run
here. Errors name the line and column."""

import re

TOKEN = re.compile(r"""
    (?P<ws>\s+|//[^\n]*|/\*.*?\*/)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[{}\[\](),=.])
""", re.X | re.S)


class ParseError(Exception):
    pass


def tokenize(text):
    pos, tokens = 0, []
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m:
            line = text.count("\n", 0, pos) + 1
            col = pos - text.rfind("\n", 0, pos)
            raise ParseError(f"line {line}, column {col}: unexpected {text[pos]!r}")
        kind = m.lastgroup
        if kind != "ws":
            tokens.append((kind, m.group(0), pos))
        pos = m.end()
    return tokens, text


class Parser:
    def __init__(self, text):
        self.tokens, self.text = tokenize(text)
        self.i = 0

    def where(self):
        pos = self.tokens[self.i][2] if self.i < len(self.tokens) else len(self.text)
        return f"line {self.text.count(chr(10), 0, pos) + 1}"

    def peek(self, offset=0):
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else (None, None, None)

    def take(self, kind=None, value=None):
        tok = self.peek()
        if tok[0] is None or (kind and tok[0] != kind) or (value and tok[1] != value):
            raise ParseError(f"{self.where()}: expected {value or kind}, got {tok[1]!r}")
        self.i += 1
        return tok

    def body(self, closing=None):
        """A list of blocks and attributes until `closing` (or end of input)."""
        items = []
        while True:
            tok = self.peek()
            if tok[0] is None:
                if closing:
                    raise ParseError(f"{self.where()}: missing {closing}")
                return items
            if closing and tok[1] == closing:
                self.take(value=closing)
                return items
            name = [self.take("ident")[1]]
            while self.peek()[1] == ".":
                self.take(value=".")
                name.append(self.take("ident")[1])
            if self.peek()[1] == "=":
                if len(name) != 1:
                    raise ParseError(f"{self.where()}: attribute names have no dots")
                self.take(value="=")
                items.append({"attr": name[0], "value": self.expr()})
            else:
                label = None
                if self.peek()[0] == "string":
                    label = self.take("string")[1][1:-1]
                self.take(value="{")
                items.append({"block": ".".join(name), "label": label, "body": self.body("}")})

    def expr(self):
        kind, value, _ = self.peek()
        if kind == "string":
            self.take()
            return value[1:-1]
        if kind == "number":
            self.take()
            return float(value)
        if value == "[":
            self.take(value="[")
            items = []
            while self.peek()[1] != "]":
                items.append(self.expr())
                if self.peek()[1] == ",":
                    self.take(value=",")
            self.take(value="]")
            return items
        if value == "{":
            self.take(value="{")
            obj = {}
            while self.peek()[1] != "}":
                key = self.take()[1].strip('"')
                self.take(value="=")
                obj[key] = self.expr()
                if self.peek()[1] == ",":
                    self.take(value=",")
            self.take(value="}")
            return obj
        if kind == "ident":
            if value in ("true", "false"):
                self.take()
                return value == "true"
            parts = [self.take("ident")[1]]
            while self.peek()[1] == ".":
                self.take(value=".")
                parts.append(self.take("ident")[1])
            if self.peek()[1] == "(":
                raise ParseError(f"{self.where()}: function calls are not used in this config")
            return {"ref": ".".join(parts)}
        raise ParseError(f"{self.where()}: unexpected {value!r}")


def parse(text):
    return Parser(text).body()


def blocks(items, name):
    return [i for i in items if i.get("block") == name]


def attr(items, name):
    for i in items:
        if i.get("attr") == name:
            return i["value"]
    return None
