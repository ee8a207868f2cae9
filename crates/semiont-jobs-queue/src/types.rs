//! The job-type arguments of polls and claims: one type name, a list, or any.

use semiont_jobs_model::JobType;
use semiont_jobs_store::TypeFilter;

use crate::{Error, Result};

/// Anything that names the job types a poll or claim accepts.
///
/// A type name (`"detection"`), a [`JobType`], a list or array of either, or
/// a [`TypeFilter`] (`TypeFilter::Any` for every type). Names are validated;
/// an empty list is rejected rather than silently matching nothing.
pub trait IntoTypeFilter {
    /// The filter, or an [`ErrorKind::InvalidInput`](crate::ErrorKind) error.
    fn into_type_filter(self) -> Result<TypeFilter>;
}

fn only(types: Vec<JobType>) -> Result<TypeFilter> {
    if types.is_empty() {
        return Err(Error::InvalidInput(
            semiont_jobs_model::Error::InvalidFilter(
                "the list of job types is empty (use TypeFilter::Any for every type)".into(),
            ),
        ));
    }
    Ok(TypeFilter::Only(types))
}

fn parse_all<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Vec<JobType>> {
    names
        .into_iter()
        .map(|n| JobType::parse(n).map_err(Error::from))
        .collect()
}

impl IntoTypeFilter for TypeFilter {
    fn into_type_filter(self) -> Result<TypeFilter> {
        match self {
            TypeFilter::Only(types) => only(types),
            any => Ok(any),
        }
    }
}

impl IntoTypeFilter for &TypeFilter {
    fn into_type_filter(self) -> Result<TypeFilter> {
        self.clone().into_type_filter()
    }
}

impl IntoTypeFilter for JobType {
    fn into_type_filter(self) -> Result<TypeFilter> {
        Ok(TypeFilter::one(self))
    }
}

impl IntoTypeFilter for &JobType {
    fn into_type_filter(self) -> Result<TypeFilter> {
        Ok(TypeFilter::one(self.clone()))
    }
}

impl IntoTypeFilter for &str {
    fn into_type_filter(self) -> Result<TypeFilter> {
        Ok(TypeFilter::one(JobType::parse(self)?))
    }
}

impl IntoTypeFilter for &String {
    fn into_type_filter(self) -> Result<TypeFilter> {
        self.as_str().into_type_filter()
    }
}

impl IntoTypeFilter for Vec<JobType> {
    fn into_type_filter(self) -> Result<TypeFilter> {
        only(self)
    }
}

impl IntoTypeFilter for &[JobType] {
    fn into_type_filter(self) -> Result<TypeFilter> {
        only(self.to_vec())
    }
}

impl<const N: usize> IntoTypeFilter for [JobType; N] {
    fn into_type_filter(self) -> Result<TypeFilter> {
        only(self.into())
    }
}

impl IntoTypeFilter for &[&str] {
    fn into_type_filter(self) -> Result<TypeFilter> {
        only(parse_all(self.iter().copied())?)
    }
}

impl IntoTypeFilter for Vec<&str> {
    fn into_type_filter(self) -> Result<TypeFilter> {
        only(parse_all(self)?)
    }
}

impl IntoTypeFilter for &[String] {
    fn into_type_filter(self) -> Result<TypeFilter> {
        only(parse_all(self.iter().map(String::as_str))?)
    }
}

impl IntoTypeFilter for Vec<String> {
    fn into_type_filter(self) -> Result<TypeFilter> {
        self.as_slice().into_type_filter()
    }
}

impl<const N: usize> IntoTypeFilter for [&str; N] {
    fn into_type_filter(self) -> Result<TypeFilter> {
        only(parse_all(self)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn forms_of_type_arguments() {
        assert_eq!(
            "detection".into_type_filter().unwrap(),
            TypeFilter::one(JobType::Detection)
        );
        assert_eq!(
            ["detection", "generation"].into_type_filter().unwrap(),
            TypeFilter::Only(vec![JobType::Detection, JobType::Generation])
        );
        assert_eq!(TypeFilter::Any.into_type_filter().unwrap(), TypeFilter::Any);
        let empty: [&str; 0] = [];
        assert_eq!(
            empty.into_type_filter().unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        let e = "bad type".into_type_filter().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("\"bad type\""), "{e}");
        assert!(TypeFilter::Only(vec![]).into_type_filter().is_err());
    }
}
