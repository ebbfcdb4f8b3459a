//! `USER name[:group]`.

use super::{Error, Origin, Request};

/// `USER`: the user for the rest of the stage and the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInstruction {
    /// Source line.
    pub origin: Origin,
    /// `user[:group]`, unexpanded.
    pub user: String,
}

pub(super) fn parse(req: &mut Request) -> Result<UserInstruction, Error> {
    let [user] = req.args.as_slice() else {
        return Err(Error::ExactlyOneArgument {
            keyword: "USER",
            span: req.span(),
        });
    };
    let user = user.clone();
    req.parse_flags()?;
    Ok(UserInstruction {
        origin: req.origin(),
        user,
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::node;
    use super::super::{parse_instruction, Instruction};

    #[test]
    fn one_argument() {
        assert_eq!(
            parse_instruction(&node("USER", &[], &[]))
                .unwrap_err()
                .to_string(),
            "USER requires exactly one argument"
        );
        let Instruction::User(u) = parse_instruction(&node("user", &[], &["app:app"])).unwrap()
        else {
            panic!("not USER")
        };
        assert_eq!(u.user, "app:app");
    }
}
