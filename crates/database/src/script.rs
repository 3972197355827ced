//! SQL scripts as statements: a small lexer that splits a migration file where PostgreSQL would,
//! recording where each statement starts, and the rule that only sandpit controls transactions.
//! Pure: no I/O.
//!
//! The lexer knows everything that can hide a `;`: `--` and nested `/* */` comments,
//! single-quoted strings (`''` inside, backslash escapes in `E'…'`), double-quoted identifiers,
//! dollar-quoted strings (`$$…$$`, `$tag$…$tag$`, where plpgsql bodies with their `BEGIN … END`
//! live), parentheses (`CREATE RULE … DO ALSO (…; …)`) and the `BEGIN ATOMIC … END` body of a
//! SQL-standard function, which it recognises with psql's own heuristic. It assumes
//! `standard_conforming_strings = on`, PostgreSQL's default since 9.1; a file that turns it off
//! to hide a `COMMIT` is caught by the transaction check that runs after every statement.

use std::fmt;

/// One statement of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement<'a> {
    /// From the statement's first token to its terminating `;` (included when there is one).
    /// Comments and blank lines before it are left out; comments inside it are kept.
    pub text: &'a str,
    /// The 1-based line of the statement's first token in the script.
    pub line: u32,
    /// The statement's first bare words (up to [`LEADING_WORDS`]), lower-cased, up to the first
    /// token that is not a word: enough to tell transaction control from everything else.
    leading: Vec<String>,
}

/// How many leading words a statement keeps: `ROLLBACK TRANSACTION TO SAVEPOINT` is the longest
/// prefix that matters.
const LEADING_WORDS: usize = 4;

/// A statement that starts, ends or subdivides a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionControl {
    /// `BEGIN`, `START TRANSACTION`.
    Begin,
    /// `COMMIT`, `END`.
    Commit,
    /// `ROLLBACK`, `ABORT`.
    Rollback,
    /// `SAVEPOINT`.
    Savepoint,
    /// `RELEASE [SAVEPOINT]`.
    Release,
    /// `ROLLBACK TO [SAVEPOINT]`.
    RollbackTo,
    /// `PREPARE TRANSACTION`.
    PrepareTransaction,
    /// `COMMIT PREPARED`.
    CommitPrepared,
    /// `ROLLBACK PREPARED`.
    RollbackPrepared,
}

impl Statement<'_> {
    /// Whether (and how) this statement controls the transaction it runs in.
    pub fn transaction_control(&self) -> Option<TransactionControl> {
        let words: Vec<&str> = self.leading.iter().map(String::as_str).collect();
        let control = match words.as_slice() {
            ["begin", ..] | ["start", "transaction", ..] => TransactionControl::Begin,
            ["commit", "prepared", ..] => TransactionControl::CommitPrepared,
            ["commit", ..] | ["end", ..] => TransactionControl::Commit,
            ["rollback", "prepared", ..] => TransactionControl::RollbackPrepared,
            ["rollback", "to", ..] | ["rollback", "work" | "transaction", "to", ..] => {
                TransactionControl::RollbackTo
            }
            ["rollback", ..] | ["abort", ..] => TransactionControl::Rollback,
            ["savepoint", ..] => TransactionControl::Savepoint,
            ["release", ..] => TransactionControl::Release,
            ["prepare", "transaction", ..] => TransactionControl::PrepareTransaction,
            _ => return None,
        };
        Some(control)
    }

    /// The statement's first line without its `;`, shortened to 60 characters: what an error
    /// message quotes.
    pub fn summary(&self) -> String {
        let first_line = self.text.lines().next().unwrap_or_default().trim_end();
        let first_line = first_line
            .strip_suffix(';')
            .unwrap_or(first_line)
            .trim_end();
        if first_line.chars().count() <= 60 {
            return first_line.to_owned();
        }
        let mut shortened: String = first_line.chars().take(59).collect();
        shortened.push('…');
        shortened
    }
}

/// A transaction control statement where sandpit does not allow one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForbiddenStatement {
    pub line: u32,
    pub statement: String,
}

impl fmt::Display for ForbiddenStatement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: `{}`", self.line, self.statement)
    }
}

/// The statements sandpit runs for a migration file, inside a transaction of its own.
///
/// A file wrapped as a whole in `BEGIN;` (or `START TRANSACTION`, with any modes) … `COMMIT;`
/// (or `END`) loses the wrapping: sandpit's transaction replaces it. Any other transaction
/// control is refused, because it would commit (or abandon) sandpit's transaction half-way —
/// and a rehearsal must be able to roll back everything it ran.
pub fn migration_statements(sql: &str) -> Result<Vec<Statement<'_>>, ForbiddenStatement> {
    let mut statements = split(sql);
    let control_at = |statements: &[Statement<'_>], index: usize| {
        statements
            .get(index)
            .and_then(Statement::transaction_control)
    };
    let wrapped = statements.len() >= 2
        && control_at(&statements, 0) == Some(TransactionControl::Begin)
        && control_at(&statements, statements.len() - 1) == Some(TransactionControl::Commit);
    if wrapped {
        statements.pop();
        statements.remove(0);
    }
    match statements
        .iter()
        .find(|statement| statement.transaction_control().is_some())
    {
        Some(statement) => Err(ForbiddenStatement {
            line: statement.line,
            statement: statement.summary(),
        }),
        None => Ok(statements),
    }
}

/// Splits `sql` into statements where PostgreSQL would end them. Empty statements (a lone `;`)
/// are left out; an unterminated string or comment runs to the end, where the server will
/// complain about it.
pub fn split(sql: &str) -> Vec<Statement<'_>> {
    let bytes = sql.as_bytes();
    let mut statements = Vec::new();
    let mut line = 1_u32;
    let mut at = 0;
    let mut current: Option<Pending> = None;
    while at < bytes.len() {
        let byte = bytes[at];
        if byte == b'\n' {
            line += 1;
            at += 1;
            continue;
        }
        if byte.is_ascii_whitespace() {
            at += 1;
            continue;
        }
        if byte == b'-' && bytes.get(at + 1) == Some(&b'-') {
            at = line_end(bytes, at);
            continue;
        }
        if byte == b'/' && bytes.get(at + 1) == Some(&b'*') {
            at = block_comment_end(bytes, at, &mut line);
            continue;
        }

        let start = at;
        let statement = current.get_or_insert_with(|| Pending::new(start, line));
        let token = match byte {
            b'\'' => {
                at = quoted_end(bytes, at, b'\'', false, &mut line);
                Token::Other
            }
            b'"' => {
                at = quoted_end(bytes, at, b'"', false, &mut line);
                Token::Other
            }
            b'$' => match dollar_tag_len(bytes, at) {
                Some(tag_len) => {
                    at = dollar_quoted_end(bytes, at, tag_len, &mut line);
                    Token::Other
                }
                None => {
                    at += 1;
                    Token::Other
                }
            },
            b';' => {
                at += 1;
                Token::Semicolon
            }
            b'(' => {
                at += 1;
                Token::Open
            }
            b')' => {
                at += 1;
                Token::Close
            }
            byte if is_identifier_start(byte) => {
                at = word_end(bytes, at);
                let word = &sql[start..at];
                if word.eq_ignore_ascii_case("e") && bytes.get(at) == Some(&b'\'') {
                    // E'…': the only strings in which a backslash escapes the next character.
                    at = quoted_end(bytes, at, b'\'', true, &mut line);
                    Token::Other
                } else {
                    Token::Word(word)
                }
            }
            byte if byte.is_ascii_digit() => {
                at = number_end(bytes, at);
                Token::Other
            }
            _ => {
                at += 1;
                Token::Other
            }
        };
        if statement.take(token, at) {
            let finished = current.take().expect("a statement is being read");
            statements.extend(finished.finish(sql));
        }
    }
    if let Some(unterminated) = current {
        statements.extend(unterminated.finish(sql));
    }
    statements
}

/// What the statement boundary logic needs to know of a token.
enum Token<'a> {
    Word(&'a str),
    Semicolon,
    Open,
    Close,
    Other,
}

/// A statement being read.
struct Pending {
    start: usize,
    end: usize,
    line: u32,
    leading: Vec<String>,
    /// Whether every token so far was a word (leading words stop at the first other token).
    only_words: bool,
    tokens: usize,
    parentheses: usize,
    /// `BEGIN … END` nesting inside the body of `CREATE [OR REPLACE] FUNCTION|PROCEDURE`.
    atomic_depth: usize,
}

impl Pending {
    fn new(start: usize, line: u32) -> Pending {
        Pending {
            start,
            end: start,
            line,
            leading: Vec::new(),
            only_words: true,
            tokens: 0,
            parentheses: 0,
            atomic_depth: 0,
        }
    }

    /// Takes in a token that ended at `end`; true when it ended the statement.
    fn take(&mut self, token: Token<'_>, end: usize) -> bool {
        self.tokens += 1;
        self.end = end;
        match token {
            Token::Word(word) => {
                let word = word.to_ascii_lowercase();
                if self.only_words && self.leading.len() < LEADING_WORDS {
                    self.leading.push(word.clone());
                }
                // psql's heuristic: in a routine definition, semicolons between BEGIN (ATOMIC)
                // and its END belong to the body; CASE also ends with END.
                if self.defines_routine() && self.parentheses == 0 {
                    match word.as_str() {
                        "begin" => self.atomic_depth += 1,
                        "case" if self.atomic_depth > 0 => self.atomic_depth += 1,
                        "end" => self.atomic_depth = self.atomic_depth.saturating_sub(1),
                        _ => {}
                    }
                }
                false
            }
            Token::Semicolon => {
                self.only_words = false;
                self.parentheses == 0 && self.atomic_depth == 0
            }
            Token::Open => {
                self.only_words = false;
                self.parentheses += 1;
                false
            }
            Token::Close => {
                self.only_words = false;
                self.parentheses = self.parentheses.saturating_sub(1);
                false
            }
            Token::Other => {
                self.only_words = false;
                false
            }
        }
    }

    /// `CREATE [OR REPLACE] FUNCTION|PROCEDURE …`.
    fn defines_routine(&self) -> bool {
        let words: Vec<&str> = self.leading.iter().map(String::as_str).collect();
        matches!(
            words.as_slice(),
            ["create", "function" | "procedure", ..]
                | ["create", "or", "replace", "function" | "procedure", ..]
        )
    }

    fn finish(self, sql: &str) -> Option<Statement<'_>> {
        let text = &sql[self.start..self.end];
        if self.tokens == 1 && text == ";" {
            return None;
        }
        Some(Statement {
            text,
            line: self.line,
            leading: self.leading,
        })
    }
}

/// PostgreSQL's identifier start: a letter, `_`, or any non-ASCII byte.
fn is_identifier_start(byte: u8) -> bool {
    byte.is_ascii_alphabetic() || byte == b'_' || byte >= 0x80
}

/// Where a word (identifier or keyword) starting at `at` ends; `$` may continue one.
fn word_end(bytes: &[u8], mut at: usize) -> usize {
    while bytes
        .get(at)
        .is_some_and(|&byte| is_identifier_start(byte) || byte.is_ascii_digit() || byte == b'$')
    {
        at += 1;
    }
    at
}

/// Where a number (`42`, `1.5e3`, `0x1F`, `1_000`) starting at `at` ends.
fn number_end(bytes: &[u8], mut at: usize) -> usize {
    while bytes
        .get(at)
        .is_some_and(|&byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'.')
    {
        at += 1;
    }
    at
}

/// The position of the newline ending a `--` comment (or the end of the script).
fn line_end(bytes: &[u8], at: usize) -> usize {
    bytes[at..]
        .iter()
        .position(|byte| *byte == b'\n')
        .map_or(bytes.len(), |offset| at + offset)
}

/// Just past the `*/` closing the (nested) comment opened at `at`.
fn block_comment_end(bytes: &[u8], mut at: usize, line: &mut u32) -> usize {
    let mut depth = 0_usize;
    while at < bytes.len() {
        match (bytes[at], bytes.get(at + 1)) {
            (b'/', Some(b'*')) => {
                depth += 1;
                at += 2;
            }
            (b'*', Some(b'/')) => {
                depth -= 1;
                at += 2;
                if depth == 0 {
                    return at;
                }
            }
            (byte, _) => {
                if byte == b'\n' {
                    *line += 1;
                }
                at += 1;
            }
        }
    }
    at
}

/// Just past the quote closing the string or identifier opened at `at` (a doubled quote stands
/// for itself; with `backslash_escapes`, so does a backslash followed by anything).
fn quoted_end(
    bytes: &[u8],
    mut at: usize,
    quote: u8,
    backslash_escapes: bool,
    line: &mut u32,
) -> usize {
    at += 1;
    while at < bytes.len() {
        let byte = bytes[at];
        if byte == b'\n' {
            *line += 1;
        }
        if backslash_escapes && byte == b'\\' {
            if bytes.get(at + 1) == Some(&b'\n') {
                *line += 1;
            }
            at += 2;
            continue;
        }
        if byte == quote {
            if bytes.get(at + 1) == Some(&quote) {
                at += 2;
                continue;
            }
            return at + 1;
        }
        at += 1;
    }
    bytes.len()
}

/// The length of the `$tag$` (or `$$`) opening a dollar-quoted string at `at`, if one does: a tag
/// is an identifier without `$`, so `$1` is a parameter and not a quote.
fn dollar_tag_len(bytes: &[u8], at: usize) -> Option<usize> {
    let mut end = at + 1;
    match bytes.get(end) {
        Some(b'$') => return Some(2),
        Some(&byte) if is_identifier_start(byte) => {}
        _ => return None,
    }
    while let Some(&byte) = bytes.get(end) {
        if is_identifier_start(byte) || byte.is_ascii_digit() {
            end += 1;
        } else {
            break;
        }
    }
    (bytes.get(end) == Some(&b'$')).then_some(end + 1 - at)
}

/// Just past the tag that closes the dollar-quoted string opened at `at`.
fn dollar_quoted_end(bytes: &[u8], at: usize, tag_len: usize, line: &mut u32) -> usize {
    let tag = &bytes[at..at + tag_len];
    let body_start = at + tag_len;
    let body_len = bytes[body_start..]
        .windows(tag_len)
        .position(|window| window == tag);
    let end = match body_len {
        Some(offset) => body_start + offset + tag_len,
        None => bytes.len(),
    };
    *line += count_newlines(&bytes[body_start..end]);
    end
}

fn count_newlines(bytes: &[u8]) -> u32 {
    let count = bytes.iter().filter(|byte| **byte == b'\n').count();
    u32::try_from(count).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(sql: &str, expected: &[(u32, &str)]) {
        let found: Vec<(u32, &str)> = split(sql)
            .iter()
            .map(|statement| (statement.line, statement.text))
            .collect();
        assert_eq!(found, expected, "splitting {sql:?}");
    }

    #[test]
    fn splits_where_postgresql_would() {
        let cases: &[(&str, &[(u32, &str)])] = &[
            ("", &[]),
            ("  \n ;; \n", &[]),
            ("SELECT 1", &[(1, "SELECT 1")]),
            (
                "SELECT 1;SELECT 2;\n\nSELECT 3 ;",
                &[(1, "SELECT 1;"), (1, "SELECT 2;"), (3, "SELECT 3 ;")],
            ),
            // Comments before a statement are left out, comments inside are kept.
            (
                "-- first; not a statement\nSELECT 1; -- trailing; comment\n/* a; b */ SELECT /* c; */ 2;",
                &[(2, "SELECT 1;"), (3, "SELECT /* c; */ 2;")],
            ),
            // Nested block comments.
            (
                "/* outer /* inner; */ still; comment */ SELECT 1;\nSELECT 2;",
                &[(1, "SELECT 1;"), (2, "SELECT 2;")],
            ),
            // Strings with doubled quotes, and a backslash that escapes nothing in a plain string.
            (
                "INSERT INTO t VALUES ('it''s; fine', 'C:\\');\nSELECT 2;",
                &[
                    (1, "INSERT INTO t VALUES ('it''s; fine', 'C:\\');"),
                    (2, "SELECT 2;"),
                ],
            ),
            // E'' strings: a backslash escapes the quote after it.
            (
                "SELECT E'a\\'; b', e'\\\\';\nSELECT 2;",
                &[(1, "SELECT E'a\\'; b', e'\\\\';"), (2, "SELECT 2;")],
            ),
            // An identifier ending in e is not an E'' prefix.
            (
                "SELECT some'\\';\nSELECT 2;",
                &[(1, "SELECT some'\\';"), (2, "SELECT 2;")],
            ),
            // Double-quoted identifiers.
            (
                "CREATE TABLE \"a;\"\"b\" (id int);\nSELECT 2;",
                &[(1, "CREATE TABLE \"a;\"\"b\" (id int);"), (2, "SELECT 2;")],
            ),
            // Dollar quotes, tagged or not, spanning lines; $1 is a parameter.
            (
                "CREATE FUNCTION f() RETURNS int AS $$\nBEGIN\n  RETURN 1;\nEND;\n$$ LANGUAGE plpgsql;\nSELECT $1;",
                &[
                    (
                        1,
                        "CREATE FUNCTION f() RETURNS int AS $$\nBEGIN\n  RETURN 1;\nEND;\n$$ LANGUAGE plpgsql;",
                    ),
                    (6, "SELECT $1;"),
                ],
            ),
            (
                "DO $body$ BEGIN PERFORM '$$;'; END $body$;\nSELECT 2;",
                &[(1, "DO $body$ BEGIN PERFORM '$$;'; END $body$;"), (2, "SELECT 2;")],
            ),
            // A `$` inside an identifier does not open a quote.
            ("SELECT a$b$; SELECT 2;", &[(1, "SELECT a$b$;"), (1, "SELECT 2;")]),
            // Parentheses keep a rule's actions together.
            (
                "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO u VALUES (1); INSERT INTO u VALUES (2));\nSELECT 2;",
                &[
                    (
                        1,
                        "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO u VALUES (1); INSERT INTO u VALUES (2));",
                    ),
                    (2, "SELECT 2;"),
                ],
            ),
            // SQL-standard function bodies, with a CASE … END inside.
            (
                "CREATE OR REPLACE FUNCTION two() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT 1;\n  SELECT CASE WHEN true THEN 2 END;\nEND;\nSELECT 3;",
                &[
                    (
                        1,
                        "CREATE OR REPLACE FUNCTION two() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT 1;\n  SELECT CASE WHEN true THEN 2 END;\nEND;",
                    ),
                    (6, "SELECT 3;"),
                ],
            ),
            // Lines are counted inside strings, identifiers and comments too.
            (
                "SELECT 'a\nb', \"c\nd\" /* e\nf */;\nSELECT 2;",
                &[(1, "SELECT 'a\nb', \"c\nd\" /* e\nf */;"), (5, "SELECT 2;")],
            ),
            // Unterminated things run to the end.
            ("SELECT 'open; SELECT 2;", &[(1, "SELECT 'open; SELECT 2;")]),
            ("SELECT $x$ open; SELECT 2;", &[(1, "SELECT $x$ open; SELECT 2;")]),
            ("SELECT 1 /* open; SELECT 2;", &[(1, "SELECT 1")]),
            // Non-ASCII text.
            ("SELECT 'é;'; SELECT ü;", &[(1, "SELECT 'é;';"), (1, "SELECT ü;")]),
        ];
        for (sql, expected) in cases {
            check(sql, expected);
        }
    }

    #[test]
    fn recognises_transaction_control() {
        use TransactionControl::*;
        let cases: &[(&str, Option<TransactionControl>)] = &[
            ("BEGIN;", Some(Begin)),
            ("begin work;", Some(Begin)),
            ("BEGIN ISOLATION LEVEL SERIALIZABLE;", Some(Begin)),
            ("START TRANSACTION READ WRITE;", Some(Begin)),
            ("COMMIT;", Some(Commit)),
            ("commit transaction;", Some(Commit)),
            ("COMMIT AND CHAIN;", Some(Commit)),
            ("END;", Some(Commit)),
            ("ROLLBACK;", Some(Rollback)),
            ("ABORT;", Some(Rollback)),
            ("ROLLBACK TO SAVEPOINT a;", Some(RollbackTo)),
            ("ROLLBACK TO a;", Some(RollbackTo)),
            ("rollback work to a;", Some(RollbackTo)),
            ("SAVEPOINT a;", Some(Savepoint)),
            ("RELEASE SAVEPOINT a;", Some(Release)),
            ("RELEASE a;", Some(Release)),
            ("PREPARE TRANSACTION 'x';", Some(PrepareTransaction)),
            ("COMMIT PREPARED 'x';", Some(CommitPrepared)),
            ("ROLLBACK PREPARED 'x';", Some(RollbackPrepared)),
            ("/* c */ -- d\n  Commit ;", Some(Commit)),
            ("PREPARE q AS SELECT 1;", None),
            ("SELECT 'COMMIT';", None),
            ("CREATE TABLE begin_log (id int);", None),
            ("\"commit\";", None),
            ("DO $$ BEGIN COMMIT; END $$;", None),
            ("START something;", None),
        ];
        for (sql, expected) in cases {
            let statements = split(sql);
            assert_eq!(statements.len(), 1, "{sql:?}");
            assert_eq!(statements[0].transaction_control(), *expected, "{sql:?}");
        }
    }

    #[test]
    fn migrations_lose_a_wrapping_transaction_and_refuse_any_other() {
        type Expected<'a> = Result<&'a [&'a str], (u32, &'a str)>;
        let cases: &[(&str, Expected)] = &[
            ("CREATE TABLE a (id int);", Ok(&["CREATE TABLE a (id int);"])),
            (
                "BEGIN;\nCREATE TABLE a (id int);\nCOMMIT;\n",
                Ok(&["CREATE TABLE a (id int);"]),
            ),
            (
                "-- wrapped\nSTART TRANSACTION;\nCREATE TABLE a (id int);\nCREATE TABLE b (id int);\nEND;",
                Ok(&["CREATE TABLE a (id int);", "CREATE TABLE b (id int);"]),
            ),
            ("BEGIN;\nCOMMIT;", Ok(&[])),
            (
                "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$\nBEGIN\n  NULL;\nEND;\n$$;",
                Ok(&["CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$\nBEGIN\n  NULL;\nEND;\n$$;"]),
            ),
            (
                "CREATE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC SELECT 1; END;",
                Ok(&["CREATE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC SELECT 1; END;"]),
            ),
            (
                "CREATE TABLE a (id int);\nCOMMIT;\nCREATE TABLE b (id int);",
                Err((2, "COMMIT")),
            ),
            ("BEGIN;\nCREATE TABLE a (id int);", Err((1, "BEGIN"))),
            ("CREATE TABLE a (id int);\nCOMMIT;", Err((2, "COMMIT"))),
            ("BEGIN;\nCREATE TABLE a (id int);\nROLLBACK;", Err((1, "BEGIN"))),
            (
                "BEGIN;\nCREATE TABLE a (id int);\nCOMMIT;\nBEGIN;\nCREATE TABLE b (id int);\nCOMMIT;",
                Err((3, "COMMIT")),
            ),
            (
                "BEGIN;\nSAVEPOINT before_b;\nCREATE TABLE b (id int);\nCOMMIT;",
                Err((2, "SAVEPOINT before_b")),
            ),
            ("SELECT 1;\n  ROLLBACK TO SAVEPOINT x;", Err((2, "ROLLBACK TO SAVEPOINT x"))),
            ("PREPARE TRANSACTION 'x';", Err((1, "PREPARE TRANSACTION 'x'"))),
        ];
        for (sql, expected) in cases {
            let found = migration_statements(sql)
                .map(|statements| statements.iter().map(|s| s.text).collect::<Vec<_>>())
                .map_err(|forbidden| (forbidden.line, forbidden.statement));
            let expected = expected
                .map(|texts| texts.to_vec())
                .map_err(|(line, statement)| (line, statement.to_owned()));
            assert_eq!(found, expected, "{sql:?}");
        }
    }

    #[test]
    fn summaries_are_one_short_line() {
        let long = format!("INSERT INTO t VALUES ('{}');", "x".repeat(80));
        let cases = [
            ("COMMIT;", "COMMIT".to_owned()),
            ("COMMIT ;", "COMMIT".to_owned()),
            ("SELECT 1,\n  2;", "SELECT 1,".to_owned()),
            (
                long.as_str(),
                format!("INSERT INTO t VALUES ('{}…", "x".repeat(36)),
            ),
        ];
        for (sql, expected) in cases {
            assert_eq!(split(sql)[0].summary(), expected, "{sql:?}");
        }
    }
}
