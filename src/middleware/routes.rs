//! One client for many APIs: destinations with a token cache of their own, beside the layer's.

use std::{fmt, sync::Arc};

use crate::{
    Error, TokenCache,
    origin::{Destination, Place, normalized_path},
};

/// The destinations that get a token from a cache other than the layer's own. Empty for most
/// layers, so a request pays one test of an `Option` for it.
#[derive(Clone, Default)]
pub(crate) struct Routes(Option<Arc<[(Place, TokenCache)]>>);

impl Routes {
    pub(crate) fn add(
        &mut self,
        destination: &str,
        cache: TokenCache,
        plain_http: bool,
    ) -> Result<(), Error> {
        let place = Place::parse(destination, plain_http)?;
        let mut routes: Vec<(Place, TokenCache)> = self.0.as_deref().unwrap_or_default().to_vec();
        routes.push((place, cache));
        // The most specific path first, so the first that covers a request is the one.
        routes.sort_by_key(|(place, _)| std::cmp::Reverse(place.depth()));
        self.0 = Some(routes.into());
        Ok(())
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The cache of the destination that covers `to`, if one does.
    pub(crate) fn find(&self, to: &Destination<'_>) -> Option<&TokenCache> {
        let routes = self.0.as_deref()?;
        let path = normalized_path(to.path);
        routes
            .iter()
            .find(|(place, _)| place.contains_at(to, &path))
            .map(|(_, cache)| cache)
    }
}

impl fmt::Debug for Routes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let places = self
            .0
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|(place, _)| place);
        f.debug_list().entries(places).finish()
    }
}
