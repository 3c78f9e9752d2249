//! Preferences during a run (spec §5.3): load a recipient's effective preference set for
//! the run's tenant, and judge one channel step against it. A "no" skips the step — no
//! message, nothing pushed — and the runner records why; it is never an error.

use serde_json::{Map, Value};

use super::registry::{CompiledStep, CompiledWorkflow};
use crate::model::RecipientRef;
use crate::model::preferences::{self, PreferenceContext, Verdict};
use crate::store::recipients::{self, ChannelDataOwner};
use crate::store::{Db, StoreResult};

/// The id of a recipient's own, tenant-independent preference set.
const DEFAULT_SET: &str = "default";

fn owner(recipient: &RecipientRef) -> ChannelDataOwner<'_> {
    match recipient {
        RecipientRef::User(id) => ChannelDataOwner::user(id),
        RecipientRef::Object { id, collection } => ChannelDataOwner::object(collection, id),
    }
}

/// The set that governs `recipient` in a run for `tenant`. With a tenant that has
/// tenant-level preferences (its default set, or the recipient's set named after it), the
/// recipient's tenant set beats the tenant default; otherwise the recipient's `default`
/// set applies. (There is no environment default yet: unset means allowed.)
pub fn effective_set(
    db: &Db<'_>,
    recipient: &RecipientRef,
    tenant: Option<&str>,
) -> StoreResult<Value> {
    let owner = owner(recipient);
    if let Some(tenant) = tenant {
        let tenant_default = recipients::tenant_preference_set(db, tenant)?;
        let recipient_tenant_set = recipients::get_preference_set(db, owner, tenant)?;
        if tenant_default.is_some() || recipient_tenant_set.is_some() {
            let levels = [
                tenant_default.map(Value::Object),
                recipient_tenant_set.map(Value::Object),
            ];
            return Ok(preferences::effective(&[
                levels[0].as_ref(),
                levels[1].as_ref(),
            ]));
        }
    }
    let own = recipients::get_preference_set(db, owner, DEFAULT_SET)?;
    Ok(Value::Object(own.unwrap_or_else(Map::new)))
}

/// `Some(reason)` when the recipient's preferences rule the step out.
pub fn skip_reason(
    workflow: &CompiledWorkflow,
    step: &CompiledStep,
    set: &Value,
    scope: &Value,
) -> Option<String> {
    let def = &workflow.def;
    if def.override_preferences {
        return None;
    }
    let context = PreferenceContext {
        workflow_key: &def.key,
        categories: &def.categories,
        channel_id: &step.channel.id,
        channel_type: "in_app_feed",
        commercial: def.is_commercial,
        scope,
    };
    match preferences::evaluate(set, &context) {
        Verdict::Send => None,
        Verdict::Skip(reason) => Some(reason),
    }
}
