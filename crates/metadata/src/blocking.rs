//! A blocking metadata client for programs without an async runtime (the Python SDK's
//! calling style). Each call runs the async [`Interface`](crate::Interface) on a private
//! single-threaded runtime.

use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::client::IntoQuery;
use crate::error::ClientError;
use crate::value::SpecResponse;
use crate::value::WorkflowRun;

/// The blocking counterpart of [`crate::Interface`]; the same methods, without `.await`.
///
/// Calling it from inside an async runtime would deadlock, so it refuses with
/// [`ClientError::InsideRuntime`] instead.
///
/// ```no_run
/// use switchyard_metadata::{blocking, dynamic};
///
/// let relay = blocking::Interface::from_env()?;
/// let secret = relay.get(dynamic!(azure.connection.secret))?;
/// relay.outputs().set("outputkey", &"This will be the value of outputkey")?;
/// # Ok::<(), switchyard_metadata::ClientError>(())
/// ```
#[derive(Debug)]
pub struct Interface {
    inner: crate::Interface,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Interface {
    /// A client for `METADATA_API_URL`.
    ///
    /// # Errors
    /// As [`crate::Interface::from_env`], or the runtime cannot start.
    pub fn from_env() -> Result<Self, ClientError> {
        Self::wrap(crate::Interface::from_env()?)
    }

    /// A client for `base_url`.
    ///
    /// # Errors
    /// As [`crate::Interface::new`], or the runtime cannot start.
    pub fn new(base_url: &str) -> Result<Self, ClientError> {
        Self::wrap(crate::Interface::new(base_url)?)
    }

    /// Wraps an async client (configured with [`crate::Interface::builder`]).
    ///
    /// # Errors
    /// The runtime cannot start.
    pub fn wrap(inner: crate::Interface) -> Result<Self, ClientError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ClientError::Runtime)?;
        Ok(Interface {
            inner,
            runtime: Some(runtime),
        })
    }

    fn block_on<T>(
        &self,
        future: impl Future<Output = Result<T, ClientError>>,
    ) -> Result<T, ClientError> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(ClientError::InsideRuntime);
        }
        match &self.runtime {
            Some(runtime) => runtime.block_on(future),
            None => Err(ClientError::InsideRuntime),
        }
    }

    /// The whole spec. See [`crate::Interface::spec`].
    ///
    /// # Errors
    /// As the async method, plus [`ClientError::InsideRuntime`].
    pub fn spec(&self) -> Result<Value, ClientError> {
        self.block_on(self.inner.spec())
    }

    /// The value at `query`. See [`crate::Interface::get`].
    ///
    /// # Errors
    /// As the async method, plus [`ClientError::InsideRuntime`].
    pub fn get(&self, query: impl IntoQuery) -> Result<Value, ClientError> {
        self.block_on(self.inner.get(query))
    }

    /// The value at `query` as `T`. See [`crate::Interface::get_as`].
    ///
    /// # Errors
    /// As the async method, plus [`ClientError::InsideRuntime`].
    pub fn get_as<T: DeserializeOwned>(&self, query: impl IntoQuery) -> Result<T, ClientError> {
        self.block_on(self.inner.get_as(query))
    }

    /// The raw reply. See [`crate::Interface::get_reply`].
    ///
    /// # Errors
    /// As the async method, plus [`ClientError::InsideRuntime`].
    pub fn get_reply(&self, query: impl IntoQuery) -> Result<SpecResponse, ClientError> {
        self.block_on(self.inner.get_reply(query))
    }

    /// Setting outputs.
    #[must_use]
    pub fn outputs(&self) -> Outputs<'_> {
        Outputs { interface: self }
    }

    /// Emitting events.
    #[must_use]
    pub fn events(&self) -> Events<'_> {
        Events { interface: self }
    }

    /// Running workflows.
    #[must_use]
    pub fn workflows(&self) -> Workflows<'_> {
        Workflows { interface: self }
    }

    /// Setting decorators.
    #[must_use]
    pub fn decorators(&self) -> Decorators<'_> {
        Decorators { interface: self }
    }
}

impl Drop for Interface {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside another runtime; this never blocks.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Blocking [`crate::Outputs`].
#[derive(Debug, Clone, Copy)]
pub struct Outputs<'a> {
    interface: &'a Interface,
}

impl Outputs<'_> {
    /// See [`crate::Outputs::set`].
    ///
    /// # Errors
    /// As the async method, plus [`ClientError::InsideRuntime`].
    pub fn set(&self, name: &str, value: &impl Serialize) -> Result<(), ClientError> {
        self.interface
            .block_on(self.interface.inner.outputs().set(name, value))
    }
}

/// Blocking [`crate::Events`].
#[derive(Debug, Clone, Copy)]
pub struct Events<'a> {
    interface: &'a Interface,
}

impl Events<'_> {
    /// See [`crate::Events::emit`].
    ///
    /// # Errors
    /// As the async method, plus [`ClientError::InsideRuntime`].
    pub fn emit(&self, data: &impl Serialize, key: Option<&str>) -> Result<(), ClientError> {
        self.interface
            .block_on(self.interface.inner.events().emit(data, key))
    }
}

/// Blocking [`crate::Workflows`].
#[derive(Debug, Clone, Copy)]
pub struct Workflows<'a> {
    interface: &'a Interface,
}

impl Workflows<'_> {
    /// See [`crate::Workflows::run`].
    ///
    /// # Errors
    /// As the async method, plus [`ClientError::InsideRuntime`].
    pub fn run(&self, name: &str, parameters: &impl Serialize) -> Result<WorkflowRun, ClientError> {
        self.interface
            .block_on(self.interface.inner.workflows().run(name, parameters))
    }
}

/// Blocking [`crate::Decorators`].
#[derive(Debug, Clone, Copy)]
pub struct Decorators<'a> {
    interface: &'a Interface,
}

impl Decorators<'_> {
    /// See [`crate::Decorators::set_link`].
    ///
    /// # Errors
    /// As the async method, plus [`ClientError::InsideRuntime`].
    pub fn set_link(&self, name: &str, description: &str, uri: &str) -> Result<(), ClientError> {
        self.interface.block_on(
            self.interface
                .inner
                .decorators()
                .set_link(name, description, uri),
        )
    }
}
