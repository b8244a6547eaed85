//! Matching command-line `--input`/`--output` arguments to a model's named inputs and outputs, shared by
//! the `resin` CLI and the `resin-run` stub: each argument is `NAME=PATH` (a name the model has) or a plain
//! path taken in the model's order.

/// Splits `NAME=PATH` (a name that the model has) from a plain path.
fn named<'a>(arg: &'a str, names: &[&str]) -> (Option<&'a str>, &'a str) {
    if let Some((n, p)) = arg.split_once('=') {
        if names.contains(&n) {
            return (Some(n), p);
        }
    }
    (None, arg)
}

/// The path given for each of `names` (None where none was), or a one-line error: too many arguments, one
/// name given twice, or `NAME=PATH` with a name the model does not have (unless the whole argument is an
/// existing file: write `./a=b.npy` for a new file whose name has `=` in it). `what` is `input` or
/// `output`, for the message.
pub fn assign<'a>(args: &'a [String], names: &[&str], what: &str) -> Result<Vec<Option<&'a str>>, String> {
    let mut slots: Vec<Option<&str>> = vec![None; names.len()];
    let mut next = 0;
    for a in args {
        let (name, path) = named(a, names);
        if let (None, Some((n, _))) = (name, a.split_once('=')) {
            if !n.is_empty() && !n.contains(std::path::is_separator) && !std::path::Path::new(a).exists() {
                return Err(format!("the model has no {what} named '{n}' (its {what}s: {})", names.join(", ")));
            }
        }
        let k = match name {
            Some(n) => names.iter().position(|x| *x == n).expect("named() returns a known name"),
            None => {
                while next < names.len() && slots[next].is_some() {
                    next += 1;
                }
                if next >= names.len() {
                    return Err(format!(
                        "too many --{what} arguments: the model has {} {what}(s): {}",
                        names.len(),
                        names.join(", ")
                    ));
                }
                next
            }
        };
        if slots[k].is_some() {
            return Err(format!("--{what} '{}' is given twice", names[k]));
        }
        slots[k] = Some(path);
    }
    Ok(slots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_order_by_name_and_errors() {
        let names = ["a", "b"];
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let x = args(&["b=y.npy", "x.npy"]);
        assert_eq!(assign(&x, &names, "input").unwrap(), vec![Some("x.npy"), Some("y.npy")]);
        // A name the model does not have is an error, unless the argument is a path.
        let x = args(&["c=z.npy"]);
        assert_eq!(assign(&x, &names, "input").unwrap_err(), "the model has no input named 'c' (its inputs: a, b)");
        let x = args(&["./c=z.npy"]);
        assert_eq!(assign(&x, &names, "input").unwrap(), vec![Some("./c=z.npy"), None]);
        let x = args(&["1", "2", "3"]);
        assert!(assign(&x, &names, "input").unwrap_err().starts_with("too many --input arguments"));
        let x = args(&["a=1", "a=2"]);
        assert_eq!(assign(&x, &names, "output").unwrap_err(), "--output 'a' is given twice");
    }
}
