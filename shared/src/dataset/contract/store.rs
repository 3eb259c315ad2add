//! The contract store: each dataset's contracts, `contracts/<dataset>/v<N>.json`, each
//! version create-only, the newest one current.

use std::sync::Arc;

use super::Contract;
use crate::audit::{Action, AuditLog, Entry};
use crate::dataset::{DatasetName, layout};
use crate::storage::{ObjectKey, ObjectStore, PutMode, StorageError, put_json};

#[derive(Debug, thiserror::Error)]
pub enum ContractStoreError {
    /// Refused as sent.
    #[error("contract for {dataset} is invalid: {reason}")]
    Invalid {
        dataset: DatasetName,
        reason: String,
    },
    /// What is stored does not read as a contract.
    #[error("stored contract {key} is invalid: {reason}")]
    Corrupt { key: ObjectKey, reason: String },
    #[error("gave up storing a contract of {0} after many conflicts")]
    Contention(DatasetName),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
}

impl ContractStoreError {
    /// Whether the same call may succeed later.
    pub fn is_transient(&self) -> bool {
        match self {
            ContractStoreError::Storage(e)
            | ContractStoreError::Audit(crate::audit::AuditError::Storage(e)) => e.is_transient(),
            ContractStoreError::Audit(_) => false,
            ContractStoreError::Contention(_) => true,
            ContractStoreError::Invalid { .. } | ContractStoreError::Corrupt { .. } => false,
        }
    }
}

/// The datasets' contracts.
#[derive(Clone)]
pub struct Contracts {
    store: Arc<dyn ObjectStore>,
    audit: AuditLog,
}

impl Contracts {
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self {
            audit: AuditLog::new(store.clone()),
            store,
        }
    }

    /// The newest stored contract of a dataset, if any.
    pub async fn current(
        &self,
        dataset: &DatasetName,
    ) -> Result<Option<Contract>, ContractStoreError> {
        let latest = self
            .store
            .list(&layout::contracts_prefix(dataset))
            .await?
            .iter()
            .filter_map(|m| layout::parse_contract_key(dataset, &m.key))
            .max();
        let Some(version) = latest else {
            return Ok(None);
        };
        self.get(dataset, version).await
    }

    /// A dataset's contract version `version`, if it is stored.
    pub async fn get(
        &self,
        dataset: &DatasetName,
        version: u32,
    ) -> Result<Option<Contract>, ContractStoreError> {
        let key = layout::contract(dataset, version);
        let bytes = match self.store.get(&key).await {
            Ok(got) => got.bytes().await?,
            Err(StorageError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut contract =
            Contract::from_json(&bytes).map_err(|e| ContractStoreError::Corrupt {
                key: key.clone(),
                reason: e.to_string(),
            })?;
        contract.version = version;
        Ok(Some(contract))
    }

    /// Stores `contract` as its dataset's next contract version and returns it numbered,
    /// audited as `actor`'s. Storing a contract equal to the current one is a no-op
    /// (idempotent).
    pub async fn put(
        &self,
        mut contract: Contract,
        actor: &str,
    ) -> Result<Contract, ContractStoreError> {
        contract.check().map_err(|e| ContractStoreError::Invalid {
            dataset: contract.dataset.clone(),
            reason: e.to_string(),
        })?;
        for _ in 0..100 {
            let current = self.current(&contract.dataset).await?;
            if let Some(current) = &current {
                let mut same = contract.clone();
                same.version = current.version;
                if &same == current {
                    // Recorded already, unless storing it was cut short before.
                    self.audited(current, actor).await?;
                    return Ok(current.clone());
                }
            }
            contract.version = current.map_or(1, |c| c.version + 1);
            let key = layout::contract(&contract.dataset, contract.version);
            match put_json(self.store.as_ref(), &key, &contract, PutMode::Create).await {
                Ok(_) => {
                    self.audited(&contract, actor).await?;
                    return Ok(contract);
                }
                Err(StorageError::AlreadyExists { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ContractStoreError::Contention(contract.dataset))
    }

    async fn audited(&self, contract: &Contract, actor: &str) -> Result<(), ContractStoreError> {
        let (dataset, version) = (&contract.dataset, contract.version);
        let entry = Entry {
            action: Action::ContractStored,
            actor: actor.to_owned(),
            subject: format!("dataset:{dataset}"),
            reason: format!("contract v{version} of {dataset}"),
            correlation_id: format!("contract:{dataset}:v{version}"),
            details: serde_json::json!({
                "dataset": dataset,
                "contract_version": version,
                "contract": layout::contract(dataset, version).as_str(),
            }),
        };
        self.audit
            .append_once(&format!("contract.stored/{dataset}/v{version}"), entry)
            .await?;
        Ok(())
    }
}
