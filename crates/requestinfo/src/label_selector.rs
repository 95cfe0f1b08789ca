//! Whether a label selector parses, as `labels.Parse` in `k8s.io/apimachinery/pkg/labels/selector.go`
//! decides it.
//!
//! `RequestInfo` never uses the parsed selector, but a `labelSelector` that does not parse makes
//! the apiserver's `ListOptions` decoding fail, and then a `metadata.name` field selector no longer
//! names the object. So the grammar is followed to the byte, quirks included:
//!
//! ```text
//! selector    ::= requirement ( "," requirement )*   |   ""
//! requirement ::= [ "!" ] KEY [ ( "=" | "==" | "!=" | ">" | "<" ) VALUE | ( "in" | "notin" ) "(" VALUES ")" ]
//! ```
//!
//! - the lexer works on bytes; blanks are space, tab, CR and LF; a NUL byte reads like the end of
//!   the input (it ends a token, and where a token would start it ends the selector);
//! - `in` and `notin` are keywords only where an operator is expected;
//! - a value list may hold empty values (`x in (,a,)`); `>` and `<` need a 64-bit integer;
//! - keys must be qualified names and values valid label values.

use crate::validation::{is_qualified_name, is_valid_label_value};

/// Whether `labels.Parse(selector)` succeeds.
pub(crate) fn parses(selector: &str) -> bool {
    Parser {
        tokens: lex(selector.as_bytes()),
        position: 0,
    }
    .selector()
    .is_some()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Token<'a> {
    EndOfString,
    ClosedParen,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier(&'a [u8]),
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenParen,
}

/// The operator of a requirement.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Operator {
    Exists,
    DoesNotExist,
    Equals,
    NotEquals,
    In,
    NotIn,
    GreaterThan,
    LessThan,
}

/// Where the parser stands: `in` and `notin` are identifiers when a value is expected.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special_symbol(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// The token a literal spells, as Go's `string2token` table.
fn keyword(literal: &[u8]) -> Option<Token<'static>> {
    Some(match literal {
        b")" => Token::ClosedParen,
        b"," => Token::Comma,
        b"!" => Token::DoesNotExist,
        b"==" => Token::DoubleEquals,
        b"=" => Token::Equals,
        b">" => Token::GreaterThan,
        b"in" => Token::In,
        b"<" => Token::LessThan,
        b"!=" => Token::NotEquals,
        b"notin" => Token::NotIn,
        b"(" => Token::OpenParen,
        _ => return None,
    })
}

/// Go's `Lexer`: `read` yields 0 at the end and also for a NUL byte, which it steps over.
struct Lexer<'a> {
    input: &'a [u8],
    position: usize,
}

impl<'a> Lexer<'a> {
    fn read(&mut self) -> u8 {
        match self.input.get(self.position) {
            Some(&b) => {
                self.position += 1;
                b
            }
            None => 0,
        }
    }

    /// Steps back over the byte just read; only ever called after a non-zero `read`.
    fn unread(&mut self) {
        self.position = self.position.saturating_sub(1);
    }

    fn next_token(&mut self) -> Token<'a> {
        let mut b = self.read();
        while is_whitespace(b) {
            b = self.read();
        }
        if b == 0 {
            return Token::EndOfString;
        }
        self.unread();
        if is_special_symbol(b) {
            self.special_symbol()
        } else {
            self.identifier_or_keyword()
        }
    }

    fn identifier_or_keyword(&mut self) -> Token<'a> {
        let start = self.position;
        let mut end = start;
        loop {
            let b = self.read();
            if b == 0 {
                break;
            }
            if is_special_symbol(b) || is_whitespace(b) {
                self.unread();
                break;
            }
            end = self.position;
        }
        let literal = self.input.get(start..end).unwrap_or_default();
        keyword(literal).unwrap_or(Token::Identifier(literal))
    }

    /// The longest operator spelled by the special symbols ahead (`!=` rather than `!`).
    fn special_symbol(&mut self) -> Token<'a> {
        let start = self.position;
        let mut last = None;
        loop {
            let b = self.read();
            if b == 0 {
                break;
            }
            if !is_special_symbol(b) {
                self.unread();
                break;
            }
            match self.input.get(start..self.position).and_then(keyword) {
                Some(token) => last = Some(token),
                None if last.is_some() => {
                    self.unread();
                    break;
                }
                None => {}
            }
        }
        // Every single special symbol is a token, so `last` is always set; Go's ErrorToken
        // cannot arise, and would fail the parse like any unexpected token.
        last.unwrap_or(Token::EndOfString)
    }
}

fn lex(input: &[u8]) -> Vec<Token<'_>> {
    let mut lexer = Lexer { input, position: 0 };
    let mut tokens = Vec::new();
    loop {
        let token = lexer.next_token();
        tokens.push(token);
        if token == Token::EndOfString {
            return tokens;
        }
    }
}

/// Go's `Parser`; every method returns `None` where Go returns an error.
struct Parser<'a> {
    tokens: Vec<Token<'a>>,
    position: usize,
}

impl<'a> Parser<'a> {
    fn lookahead(&self, context: Context) -> Token<'a> {
        let token = self
            .tokens
            .get(self.position)
            .copied()
            .unwrap_or(Token::EndOfString);
        match (context, token) {
            (Context::Values, Token::In) => Token::Identifier(b"in"),
            (Context::Values, Token::NotIn) => Token::Identifier(b"notin"),
            _ => token,
        }
    }

    fn consume(&mut self, context: Context) -> Token<'a> {
        let token = self.lookahead(context);
        self.position += 1;
        token
    }

    fn selector(&mut self) -> Option<()> {
        loop {
            match self.lookahead(Context::Values) {
                Token::Identifier(_) | Token::DoesNotExist => {
                    self.requirement()?;
                    match self.consume(Context::Values) {
                        Token::EndOfString => return Some(()),
                        Token::Comma => match self.lookahead(Context::Values) {
                            Token::Identifier(_) | Token::DoesNotExist => {}
                            _ => return None,
                        },
                        _ => return None,
                    }
                }
                Token::EndOfString => return Some(()),
                _ => return None,
            }
        }
    }

    fn requirement(&mut self) -> Option<()> {
        let (key, inferred) = self.key_and_inferred_operator()?;
        if let Some(operator) = inferred {
            return new_requirement(key, operator, &[]);
        }
        let operator = self.operator()?;
        let values = match operator {
            Operator::In | Operator::NotIn => self.value_set()?,
            _ => vec![self.exact_value()?],
        };
        new_requirement(key, operator, &values)
    }

    /// The key, and `Exists`/`DoesNotExist` when no binary operator follows. A `!key` is
    /// `DoesNotExist` whatever follows; anything but `,` or the end then fails the selector.
    fn key_and_inferred_operator(&mut self) -> Option<(&'a [u8], Option<Operator>)> {
        let mut token = self.consume(Context::Values);
        let mut operator = None;
        if token == Token::DoesNotExist {
            operator = Some(Operator::DoesNotExist);
            token = self.consume(Context::Values);
        }
        let Token::Identifier(key) = token else {
            return None;
        };
        if !is_qualified_name(key) {
            return None;
        }
        if operator.is_none()
            && matches!(
                self.lookahead(Context::Values),
                Token::EndOfString | Token::Comma
            )
        {
            operator = Some(Operator::Exists);
        }
        Some((key, operator))
    }

    fn operator(&mut self) -> Option<Operator> {
        Some(match self.consume(Context::KeyAndOperator) {
            Token::In => Operator::In,
            Token::Equals | Token::DoubleEquals => Operator::Equals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            Token::NotIn => Operator::NotIn,
            Token::NotEquals => Operator::NotEquals,
            _ => return None,
        })
    }

    /// `( values )`; `()` is the one empty value.
    fn value_set(&mut self) -> Option<Vec<&'a [u8]>> {
        if self.consume(Context::Values) != Token::OpenParen {
            return None;
        }
        match self.lookahead(Context::Values) {
            Token::Identifier(_) | Token::Comma => {
                let values = self.identifier_list()?;
                match self.consume(Context::Values) {
                    Token::ClosedParen => Some(values),
                    _ => None,
                }
            }
            Token::ClosedParen => {
                self.consume(Context::Values);
                Some(vec![b""])
            }
            _ => None,
        }
    }

    /// Comma-separated, possibly empty values, up to (not including) the `)`.
    fn identifier_list(&mut self) -> Option<Vec<&'a [u8]>> {
        let mut values = Vec::new();
        loop {
            match self.consume(Context::Values) {
                Token::Identifier(value) => {
                    values.push(value);
                    match self.lookahead(Context::Values) {
                        Token::Comma => continue,
                        Token::ClosedParen => return Some(values),
                        _ => return None,
                    }
                }
                Token::Comma => {
                    if values.is_empty() {
                        values.push(b"");
                    }
                    match self.lookahead(Context::Values) {
                        Token::ClosedParen => {
                            values.push(b"");
                            return Some(values);
                        }
                        Token::Comma => {
                            self.consume(Context::Values);
                            values.push(b"");
                        }
                        _ => {}
                    }
                }
                _ => return None,
            }
        }
    }

    /// The value after `=`, `==`, `!=`, `>` or `<`; empty when the requirement ends there.
    fn exact_value(&mut self) -> Option<&'a [u8]> {
        if matches!(
            self.lookahead(Context::Values),
            Token::EndOfString | Token::Comma
        ) {
            return Some(b"");
        }
        match self.consume(Context::Values) {
            Token::Identifier(value) => Some(value),
            _ => None,
        }
    }
}

/// Go's `NewRequirement` checks, for the operator/value shapes the parser can produce.
fn new_requirement(key: &[u8], operator: Operator, values: &[&[u8]]) -> Option<()> {
    if !is_qualified_name(key) {
        return None;
    }
    if matches!(operator, Operator::GreaterThan | Operator::LessThan)
        && !values.iter().all(|value| is_int64(value))
    {
        return None;
    }
    values
        .iter()
        .all(|value| is_valid_label_value(value))
        .then_some(())
}

/// Go's `strconv.ParseInt(s, 10, 64)` succeeding.
fn is_int64(value: &[u8]) -> bool {
    std::str::from_utf8(value).is_ok_and(|s| s.parse::<i64>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::parses;

    #[test]
    fn valid_selectors() {
        for selector in [
            "",
            "   ",
            "app",
            "!app",
            "app=demo",
            "app==demo",
            "app!=demo",
            "app=",
            "app=,tier",
            "app in (a,b)",
            "app notin (a)",
            "app in ()",
            "app in (,a,)",
            "app in (a,,b)",
            "x in (in,notin)",
            "in",
            "in=in",
            "count>5",
            "count<9223372036854775807",
            "app.kubernetes.io/name=web, tier in (fe, be)",
            "a = b\t,\tc",
            "a=b\0",
            "\0 anything after a leading NUL",
            "a=\0",
            "app=demo,!legacy",
        ] {
            assert!(parses(selector), "{selector:?} should parse");
        }
    }

    #[test]
    fn invalid_selectors() {
        for selector in [
            ",",
            "app,",
            "app=demo,",
            "=demo",
            "app demo",
            "app===demo",
            "!app=demo",
            "!",
            "app in a",
            "app in (a",
            "app in (a b)",
            "app notin",
            "count>five",
            "count<9223372036854775808",
            "count<-5",
            "a=b\tc",
            "count>",
            "-app=demo",
            "app=-demo",
            "app=(x)",
            "a/b/c",
            "app=demo)",
            "a=b\0c",
        ] {
            assert!(!parses(selector), "{selector:?} should not parse");
        }
    }
}
