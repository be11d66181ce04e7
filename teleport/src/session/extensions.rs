//! [`Extensions`]: typed values attached to one session.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

/// A map from a type to one value of that type, shared by every handle of a
/// session and dropped with it.
///
/// Plugins use it to keep per-session state (who authenticated, when the
/// last frame arrived); handlers can read it through
/// [`Ctx::session`](crate::Ctx::session). Values are cloned out, so store an
/// `Arc` for anything large or shared-mutable.
///
/// ```
/// use teleport::session::Extensions;
///
/// #[derive(Clone, Debug, PartialEq)]
/// struct User(String);
///
/// let ext = Extensions::new();
/// assert!(ext.insert(User("ada".into())).is_none());
/// assert_eq!(ext.get::<User>(), Some(User("ada".into())));
/// assert!(ext.contains::<User>());
/// assert_eq!(ext.remove::<User>(), Some(User("ada".into())));
/// assert!(ext.get::<User>().is_none());
/// ```
#[derive(Default)]
pub struct Extensions {
    map: Mutex<HashMap<TypeId, Box<dyn Any + Send + Sync>>>,
}

impl fmt::Debug for Extensions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Extensions")
            .field("len", &self.lock().len())
            .finish()
    }
}

impl Extensions {
    /// An empty map.
    pub fn new() -> Extensions {
        Extensions::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TypeId, Box<dyn Any + Send + Sync>>> {
        // Each operation leaves the map consistent, so a panicking holder
        // elsewhere does not poison it for us.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores `value`, returning the value of the same type it replaces.
    pub fn insert<T: Send + Sync + 'static>(&self, value: T) -> Option<T> {
        self.lock()
            .insert(TypeId::of::<T>(), Box::new(value))
            .and_then(|old| old.downcast::<T>().ok().map(|b| *b))
    }

    /// A clone of the value of type `T`, if one is stored.
    pub fn get<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.lock()
            .get(&TypeId::of::<T>())
            .and_then(|v| v.downcast_ref::<T>())
            .cloned()
    }

    /// The value of type `T`, inserting `make()` first if there is none;
    /// returns a clone.
    pub fn get_or_insert_with<T: Clone + Send + Sync + 'static>(
        &self,
        make: impl FnOnce() -> T,
    ) -> T {
        let mut map = self.lock();
        if let Some(v) = map
            .get(&TypeId::of::<T>())
            .and_then(|v| v.downcast_ref::<T>())
        {
            return v.clone();
        }
        let value = make();
        map.insert(TypeId::of::<T>(), Box::new(value.clone()));
        value
    }

    /// Whether a value of type `T` is stored.
    pub fn contains<T: Send + Sync + 'static>(&self) -> bool {
        self.lock().contains_key(&TypeId::of::<T>())
    }

    /// Removes and returns the value of type `T`.
    pub fn remove<T: Send + Sync + 'static>(&self) -> Option<T> {
        self.lock()
            .remove(&TypeId::of::<T>())
            .and_then(|old| old.downcast::<T>().ok().map(|b| *b))
    }

    /// How many values are stored.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}
