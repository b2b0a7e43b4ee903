//! The built-in `calculator` tool: a real arithmetic expression evaluator.
//!
//! Grammar (usual precedence, `^` right-associative):
//! `expr = term (('+'|'-') term)*`, `term = power (('*'|'/'|'%') power)*`,
//! `power = unary ('^' power)?`, `unary = ('-'|'+') unary | atom`,
//! `atom = number | constant | function '(' expr ')' | '(' expr ')'`.

use super::{CallContext, Tool, ToolError};
use agentflow_shared::llm::ToolSpec;
use agentflow_shared::tools::builtin_spec;
use futures::future::BoxFuture;
use serde_json::{Value, json};

/// Evaluates arithmetic expressions such as `(2 + 3) * 4 ^ 2 / sqrt(16)`.
pub struct Calculator;

impl Tool for Calculator {
    fn spec(&self) -> ToolSpec {
        builtin_spec("calculator").expect("a built-in")
    }

    fn call(
        &self,
        _context: &CallContext,
        arguments: Value,
    ) -> BoxFuture<'static, Result<Value, ToolError>> {
        let result = arguments
            .get("expression")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ToolError::InvalidArguments("expected {\"expression\": \"<string>\"}".into())
            })
            .and_then(|expr| evaluate(expr).map_err(ToolError::Failed))
            .map(number_json);
        Box::pin(async move { result })
    }
}

/// A whole result as a JSON integer (`20`, not `20.0`), anything else as a float.
fn number_json(value: f64) -> Value {
    if value.fract() == 0.0 && value.abs() < 9.0e15 {
        json!(value as i64)
    } else {
        json!(value)
    }
}

/// Evaluates an expression, or says where it is wrong.
pub fn evaluate(input: &str) -> Result<f64, String> {
    if input.len() > MAX_EXPRESSION_BYTES {
        return Err(format!(
            "expression too long ({} bytes, at most {MAX_EXPRESSION_BYTES})",
            input.len()
        ));
    }
    let mut parser = Parser {
        chars: input.chars().collect(),
        pos: 0,
        depth: 0,
    };
    let value = parser.expr()?;
    parser.skip_ws();
    if parser.pos < parser.chars.len() {
        return Err(format!(
            "unexpected `{}` at position {}",
            parser.chars[parser.pos],
            parser.pos + 1
        ));
    }
    if !value.is_finite() {
        return Err("the result is not a finite number".into());
    }
    Ok(value)
}

/// The longest expression evaluated.
pub const MAX_EXPRESSION_BYTES: usize = 64 * 1024;

/// The deepest nesting of parentheses, signs, powers and functions: the parser recurses once
/// per level, so this bounds its stack whatever the input.
pub const MAX_DEPTH: usize = 64;

struct Parser {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
}

impl Parser {
    /// Runs `parse` one nesting level deeper, refusing past [`MAX_DEPTH`].
    fn nested(
        &mut self,
        parse: impl FnOnce(&mut Self) -> Result<f64, String>,
    ) -> Result<f64, String> {
        if self.depth >= MAX_DEPTH {
            return Err(format!(
                "expression nested too deeply (at most {MAX_DEPTH} levels)"
            ));
        }
        self.depth += 1;
        let value = parse(self);
        self.depth -= 1;
        value
    }

    fn skip_ws(&mut self) {
        while self.chars.get(self.pos).is_some_and(|c| c.is_whitespace()) {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_ws();
        self.chars.get(self.pos).copied()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expr(&mut self) -> Result<f64, String> {
        let mut value = self.term()?;
        loop {
            if self.eat('+') {
                value += self.term()?;
            } else if self.eat('-') {
                value -= self.term()?;
            } else {
                return Ok(value);
            }
        }
    }

    fn term(&mut self) -> Result<f64, String> {
        let mut value = self.power()?;
        loop {
            let op = match self.peek() {
                Some(c @ ('*' | '/' | '%' | '×' | '÷')) => c,
                _ => return Ok(value),
            };
            self.pos += 1;
            let rhs = self.power()?;
            value = match op {
                '*' | '×' => value * rhs,
                _ if rhs == 0.0 => return Err("division by zero".into()),
                '%' => value % rhs,
                _ => value / rhs,
            };
        }
    }

    fn power(&mut self) -> Result<f64, String> {
        let base = self.unary()?;
        if self.eat('^') {
            let exponent = self.nested(Self::power)?;
            Ok(base.powf(exponent))
        } else {
            Ok(base)
        }
    }

    fn unary(&mut self) -> Result<f64, String> {
        if self.eat('-') {
            Ok(-self.nested(Self::unary)?)
        } else if self.eat('+') {
            self.nested(Self::unary)
        } else {
            self.atom()
        }
    }

    fn atom(&mut self) -> Result<f64, String> {
        match self.peek() {
            Some('(') => {
                self.pos += 1;
                let value = self.nested(Self::expr)?;
                if !self.eat(')') {
                    return Err(format!("expected `)` at position {}", self.pos + 1));
                }
                Ok(value)
            }
            Some(c) if c.is_ascii_digit() || c == '.' => self.number(),
            Some(c) if c.is_ascii_alphabetic() => self.name(),
            Some(c) => Err(format!("unexpected `{c}` at position {}", self.pos + 1)),
            None => Err("unexpected end of expression".into()),
        }
    }

    fn number(&mut self) -> Result<f64, String> {
        let start = self.pos;
        while self
            .chars
            .get(self.pos)
            .is_some_and(|c| c.is_ascii_digit() || *c == '.' || *c == '_')
        {
            self.pos += 1;
        }
        if matches!(self.chars.get(self.pos), Some('e' | 'E'))
            && self
                .chars
                .get(self.pos + 1)
                .is_some_and(|c| c.is_ascii_digit() || *c == '-' || *c == '+')
        {
            self.pos += 2;
            while self.chars.get(self.pos).is_some_and(char::is_ascii_digit) {
                self.pos += 1;
            }
        }
        let text: String = self.chars[start..self.pos]
            .iter()
            .filter(|c| **c != '_')
            .collect();
        text.parse()
            .map_err(|_| format!("invalid number `{text}` at position {}", start + 1))
    }

    fn name(&mut self) -> Result<f64, String> {
        let start = self.pos;
        while self
            .chars
            .get(self.pos)
            .is_some_and(|c| c.is_ascii_alphanumeric())
        {
            self.pos += 1;
        }
        let name: String = self.chars[start..self.pos].iter().collect();
        match name.as_str() {
            "pi" => return Ok(std::f64::consts::PI),
            "e" => return Ok(std::f64::consts::E),
            _ => {}
        }
        let function: fn(f64) -> f64 = match name.as_str() {
            "sqrt" => f64::sqrt,
            "abs" => f64::abs,
            "ln" => f64::ln,
            "log10" => f64::log10,
            "exp" => f64::exp,
            "sin" => f64::sin,
            "cos" => f64::cos,
            "tan" => f64::tan,
            "round" => f64::round,
            "floor" => f64::floor,
            "ceil" => f64::ceil,
            _ => return Err(format!("unknown name `{name}` at position {}", start + 1)),
        };
        if !self.eat('(') {
            return Err(format!("expected `(` after `{name}`"));
        }
        let arg = self.nested(Self::expr)?;
        if !self.eat(')') {
            return Err(format!("expected `)` after the argument of `{name}`"));
        }
        Ok(function(arg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let parens = format!("{}1{}+1", "(".repeat(30_000), ")".repeat(30_000));
        let minuses = format!("{}1", "-".repeat(60_000));
        let powers = format!("2{}", "^2".repeat(30_000));
        let functions = format!("{}1{}", "sqrt(".repeat(10_000), ")".repeat(10_000));
        for expression in [parens, minuses, powers, functions] {
            let error = evaluate(&expression).unwrap_err();
            assert!(error.contains("nested too deeply"), "{error}");
        }
        let fine = format!(
            "{}1{}",
            "(".repeat(MAX_DEPTH - 1),
            ")".repeat(MAX_DEPTH - 1)
        );
        assert_eq!(evaluate(&fine), Ok(1.0));
        assert!(
            evaluate(&"1+".repeat(40_000))
                .unwrap_err()
                .contains("too long")
        );
    }

    #[test]
    fn respects_precedence_and_associativity() {
        assert_eq!(evaluate("2 + 3 * 4").unwrap(), 14.0);
        assert_eq!(evaluate("(2 + 3) * 4").unwrap(), 20.0);
        assert_eq!(evaluate("2 ^ 3 ^ 2").unwrap(), 512.0);
        assert_eq!(evaluate("10 - 4 - 3").unwrap(), 3.0);
        assert_eq!(evaluate("-2 ^ 2").unwrap(), 4.0);
        assert_eq!(evaluate("7 / 2").unwrap(), 3.5);
        assert_eq!(evaluate("17 % 5").unwrap(), 2.0);
        assert_eq!(evaluate("1_000 * 1.5e2").unwrap(), 150_000.0);
    }

    #[test]
    fn knows_functions_and_constants() {
        assert_eq!(evaluate("sqrt(16) + abs(-2)").unwrap(), 6.0);
        assert!((evaluate("2 * pi").unwrap() - std::f64::consts::TAU).abs() < 1e-12);
        assert_eq!(
            evaluate("round(2.6) + floor(2.6) + ceil(2.1)").unwrap(),
            8.0
        );
    }

    #[test]
    fn reports_errors_instead_of_guessing() {
        assert_eq!(evaluate("1 / 0").unwrap_err(), "division by zero");
        assert!(evaluate("2 +").unwrap_err().contains("end of expression"));
        assert!(evaluate("(1 + 2").unwrap_err().contains("expected `)`"));
        assert!(evaluate("2 $ 3").unwrap_err().contains("unexpected `$`"));
        assert!(evaluate("foo(2)").unwrap_err().contains("unknown name"));
        assert!(evaluate("sqrt(-1)").unwrap_err().contains("finite"));
    }

    #[tokio::test]
    async fn the_tool_validates_its_arguments() {
        let tool = Calculator;
        assert_eq!(
            tool.call(&CallContext::default(), json!({"expression": "6*7"}))
                .await
                .unwrap(),
            json!(42)
        );
        assert_eq!(
            tool.call(&CallContext::default(), json!({"expression": "7/2"}))
                .await
                .unwrap(),
            json!(3.5)
        );
        assert!(matches!(
            tool.call(&CallContext::default(), json!({"expr": "6*7"}))
                .await,
            Err(ToolError::InvalidArguments(_))
        ));
    }
}
