#[doc = r" A home."]
pub trait Home: ::teleport::__private::Send + ::teleport::__private::Sync + 'static {
    #[doc = r" Echoes the text back."]
    fn echo(
        &self,
        ctx: teleport::Ctx,
        text: String,
    ) -> impl ::teleport::__private::Future<Output = Result<String, teleport::Status>>
    + ::teleport::__private::Send;
    #[doc = r" Leaves a note."]
    fn note(
        &self,
        from: String,
        text: String,
    ) -> impl ::teleport::__private::Future<Output = ()> + ::teleport::__private::Send;
}
#[doc = "A client of the [`Home`] service: calls its methods over a `teleport::Caller`: one session (the default, `HomeClient::new(session)`) or a balanced client over every endpoint of the service (`HomeClient::new(balanced)`)."]
#[doc = ""]
#[doc = "Cheap to clone: clones share the session. Every method has the trait method's arguments (without the call context) and returns once the reply arrives (pull) or once the push is queued."]
#[derive(:: core :: clone :: Clone, :: core :: fmt :: Debug)]
#[allow(dead_code)]
pub struct HomeClient<C = ::teleport::__private::Session> {
    caller: C,
    options: ::teleport::__private::CallOptions,
    prefix: ::teleport::__private::Option<::teleport::__private::Arc<str>>,
    query: ::teleport::__private::Option<::teleport::__private::Arc<str>>,
    #[doc = r" Every route's URI under `prefix` and with `query`, composed"]
    #[doc = r" when they were set; `None` without either."]
    uris: ::teleport::__private::Option<
        ::teleport::__private::Arc<[::teleport::__private::Box<str>]>,
    >,
}
#[allow(dead_code)]
impl<C: ::teleport::__private::Caller> HomeClient<C> {
    #[doc = r" A client calling the service over `caller` (a session, or a balanced client), with the peer's default call options."]
    pub fn new(caller: C) -> Self {
        Self {
            caller,
            options: ::teleport::__private::CallOptions::default(),
            prefix: ::teleport::__private::Option::None,
            query: ::teleport::__private::Option::None,
            uris: ::teleport::__private::Option::None,
        }
    }
    #[doc = r" A copy of this client whose calls use `options` (timeout, body codec, gzip level, header codec)."]
    #[must_use]
    pub fn with_options(&self, options: ::teleport::__private::CallOptions) -> Self {
        Self {
            options,
            ..::core::clone::Clone::clone(self)
        }
    }
    #[doc = r" A copy of this client that calls the service under a group prefix, for a server registered with `register_in` on a router group."]
    #[must_use]
    pub fn with_prefix(&self, prefix: &str) -> Self {
        let prefix = ::teleport::__private::prefix(prefix);
        Self {
            uris: ::teleport::__private::uris(&prefix, &self.query, &["/home/echo", "/home/note"]),
            prefix,
            ..::core::clone::Clone::clone(self)
        }
    }
    #[doc = r#" A copy of this client whose calls carry a query string (`"from=me&x=1"`, already percent-encoded), which the handler reads from its call context."#]
    #[must_use]
    pub fn with_query(&self, query: &str) -> Self {
        let query = ::teleport::__private::query(query);
        Self {
            uris: ::teleport::__private::uris(&self.prefix, &query, &["/home/echo", "/home/note"]),
            query,
            ..::core::clone::Clone::clone(self)
        }
    }
    #[doc = r" What the calls go over."]
    pub fn caller(&self) -> &C {
        &self.caller
    }
    #[doc = r" The options every call of this client uses."]
    pub fn options(&self) -> ::teleport::__private::CallOptions {
        self.options
    }
    #[doc = r" Echoes the text back."]
    #[doc = ""]
    #[doc = "Pulls `/home/echo` and waits for the reply."]
    #[doc = ""]
    #[doc = "# Errors"]
    #[doc = ""]
    #[doc = "`teleport::Error::Status` with the status the service replied (an `Err` it returned, or a failure such as `404` when nothing serves the URI), or a local failure: timeout, closed connection, an argument or reply the codec cannot carry."]
    pub async fn echo(
        &self,
        text: String,
    ) -> ::teleport::__private::Result<String, ::teleport::__private::Error> {
        ::teleport::__private::Caller::pull_owned(
            &self.caller,
            ::teleport::__private::uri_at(&self.uris, 0usize, "/home/echo"),
            text,
            self.options,
        )
        .await
    }
    #[doc = r" Leaves a note."]
    #[doc = ""]
    #[doc = "Pushes `/home/note` (one-way: returns once the push is queued, not when it is handled)."]
    #[doc = ""]
    #[doc = "# Errors"]
    #[doc = ""]
    #[doc = "A local failure: closed connection, or an argument the codec cannot carry."]
    pub async fn note(
        &self,
        from: String,
        text: String,
    ) -> ::teleport::__private::Result<(), ::teleport::__private::Error> {
        ::teleport::__private::Caller::push_with(
            &self.caller,
            ::teleport::__private::uri_at(&self.uris, 1usize, "/home/note"),
            &(from, text),
            self.options,
        )
        .await
    }
}
#[allow(dead_code)]
impl HomeClient<::teleport::__private::Session> {
    #[doc = r" The session the calls go over."]
    pub fn session(&self) -> &::teleport::__private::Session {
        &self.caller
    }
}
#[doc = "Serves the [`Home`] service: registers an implementation's methods as routes of a router."]
#[doc = ""]
#[doc = "The implementation is shared behind an `Arc` by every session of the peer; each call runs the method on it concurrently with the others."]
#[allow(dead_code)]
pub struct HomeServer<S> {
    service: ::teleport::__private::Arc<S>,
}
impl<S> ::core::clone::Clone for HomeServer<S> {
    fn clone(&self) -> Self {
        Self {
            service: ::teleport::__private::Arc::clone(&self.service),
        }
    }
}
impl<S> ::core::fmt::Debug for HomeServer<S> {
    fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
        f.debug_struct(::core::stringify!(HomeServer))
            .finish_non_exhaustive()
    }
}
#[allow(dead_code)]
impl<S: Home> HomeServer<S> {
    #[doc = r" Wraps an implementation of the service."]
    pub fn new(service: S) -> Self {
        Self {
            service: ::teleport::__private::Arc::new(service),
        }
    }
    #[doc = r" Wraps an implementation that is already shared."]
    pub fn from_arc(service: ::teleport::__private::Arc<S>) -> Self {
        Self { service }
    }
    #[doc = r" The implementation."]
    pub fn service(&self) -> &::teleport::__private::Arc<S> {
        &self.service
    }
    #[doc = r" Registers every method of the service on `router`, at its URI."]
    #[doc = ""]
    #[doc = "Routes:"]
    #[doc = "- pull `/home/echo`"]
    #[doc = "- push `/home/note`"]
    #[doc = r""]
    #[doc = r" # Panics"]
    #[doc = r""]
    #[doc = r" If the router already has a route of the same kind at one of these URIs."]
    pub fn register(&self, router: &mut ::teleport::__private::Router) {
        self.register_in(&mut router.group(""));
    }
    #[doc = r" Registers every method of the service on a router group: each URI is"]
    #[doc = r" prefixed with the group's prefix (call it with a client made"]
    #[doc = r" `with_prefix` the same prefix). On `router.spawned()`, each call"]
    #[doc = r" runs as its own task, for methods that burn CPU."]
    #[doc = r""]
    #[doc = r" # Panics"]
    #[doc = r""]
    #[doc = r" If the router already has a route of the same kind at one of these URIs."]
    #[allow(deprecated)]
    pub fn register_in(&self, group: &mut ::teleport::__private::Group<'_>) {
        {
            let service = ::teleport::__private::Arc::clone(&self.service);
            group.pull("/home/echo", move |ctx: ::teleport::__private::Ctx, arg| {
                let service = ::teleport::__private::Arc::clone(&service);
                async move {
                    let arg0 = arg;
                    <S as Home>::echo(&*service, ctx, arg0).await
                }
            });
        }
        {
            let service = ::teleport::__private::Arc::clone(&self.service);
            group.push("/home/note", move |_: ::teleport::__private::Ctx, arg| {
                let service = ::teleport::__private::Arc::clone(&service);
                async move {
                    let (arg0, arg1) = arg;
                    <S as Home>::note(&*service, arg0, arg1).await
                }
            });
        }
    }
}
