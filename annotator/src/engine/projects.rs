//! Projects: creating them, their settings, and what the trainer posts about their sets.

use super::*;

impl Engine {
    /// Stores a model's descriptions of a round (replacing what the same system posted for the
    /// same round before) and the priorities that come with them, all or nothing. An item
    /// without a description sets only the priority.
    pub fn post_model_descriptions(
        &self,
        project: &str,
        round: i32,
        system: &str,
        items: &[ModelDescription],
        now: Millis,
    ) -> Result<(usize, usize)> {
        if system.is_empty()
            || system.len() > 64
            || !system
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(EngineError::Invalid(format!(
                "system {system:?}: 1 to 64 lowercase letters, digits and dashes"
            )));
        }
        if round < 0 {
            return Err(EngineError::Invalid(format!("round {round}: must be >= 0")));
        }
        for (i, item) in items.iter().enumerate() {
            let text = item.description.as_deref().unwrap_or_default();
            if text.chars().count() > MODEL_DESCRIPTION_MAX_CHARS
                || text.chars().any(char::is_control)
            {
                return Err(EngineError::Invalid(format!(
                    "descriptions[{i}].description: at most {MODEL_DESCRIPTION_MAX_CHARS} characters, no control characters"
                )));
            }
            if item.priority.is_some_and(|p| !p.is_finite()) {
                return Err(EngineError::Invalid(format!(
                    "descriptions[{i}].priority: must be a finite number"
                )));
            }
        }
        self.db.write(|c| {
            let p = project_in(c, project)?;
            let mut priorities = 0;
            for (i, item) in items.iter().enumerate() {
                let set = q::set_by_neuron(c, p.id, &item.model, &item.layer, item.unit)?
                    .ok_or_else(|| {
                        EngineError::Invalid(format!(
                            "descriptions[{i}]: project {project:?} has no set for {} {} unit {}",
                            item.model, item.layer, item.unit
                        ))
                    })?;
                if let Some(text) = &item.description {
                    q::put_model_description(c, set.id, round, system, text, now)?;
                }
                if let Some(priority) = item.priority {
                    q::set_priority(c, set.id, priority)?;
                    priorities += 1;
                }
            }
            q::log(
                c,
                &NewEvent {
                    project_id: Some(p.id),
                    detail: json!({ "round": round, "system": system, "descriptions": items.len(), "priorities": priorities }).to_string(),
                    ..event("model_descriptions", now)
                },
            )?;
            Ok((items.len(), priorities))
        })
    }

    /// Model-vs-human agreement per layer, round and system, in round order.
    pub fn model_agreement(&self, project: &str) -> Result<Vec<Agreement>> {
        let (p, models, humans) = self.db.read(|c| -> Result<_> {
            let p = project_in(c, project)?;
            let models = q::model_descriptions_of_project(c, p.id)?;
            let humans = q::approved_texts_of_project(c, p.id)?;
            Ok((p, models, humans))
        })?;
        let mut refs: std::collections::HashMap<i64, Vec<String>> = Default::default();
        for (set, text) in humans {
            refs.entry(set)
                .or_default()
                .push(milan_metrics::normalize(&text));
        }
        let complete = |set: &i64| {
            refs.get(set)
                .is_some_and(|r| r.len() >= p.assignments_per_set as usize)
        };
        // (round, model, layer, system) -> (hypotheses, references, described)
        type Group = (Vec<String>, Vec<Vec<String>>, usize);
        let mut groups: std::collections::BTreeMap<(i32, String, String, String), Group> =
            Default::default();
        for m in models {
            let g = groups
                .entry((m.round, m.model, m.layer, m.system))
                .or_default();
            g.2 += 1;
            if complete(&m.set_id) {
                g.0.push(milan_metrics::normalize(&m.description));
                g.1.push(refs[&m.set_id].clone());
            }
        }
        Ok(groups
            .into_iter()
            .map(
                |((round, model, layer, system), (hyps, r, described))| Agreement {
                    bleu: (!hyps.is_empty()).then(|| {
                        hyps.iter()
                            .zip(&r)
                            .map(|(h, refs)| milan_metrics::bleu::sentence_bleu(h, refs).score)
                            .sum::<f64>()
                            / hyps.len() as f64
                    }),
                    sets: hyps.len(),
                    described,
                    model,
                    layer,
                    round,
                    system,
                },
            )
            .collect())
    }

    /// Whether accept-next hands out this project's sets by priority (highest first).
    pub fn set_order(&self, project: &str, by_priority: bool, now: Millis) -> Result<()> {
        self.db.write(|c| {
            let p = project_in(c, project)?;
            q::set_order_by_priority(c, p.id, by_priority)?;
            q::log(
                c,
                &NewEvent {
                    project_id: Some(p.id),
                    detail: json!({ "by_priority": by_priority }).to_string(),
                    ..event("order_changed", now)
                },
            )?;
            Ok(())
        })
    }

    /// Makes the project's catalog (`/catalog/<project>/`) readable by anyone, or by the
    /// requester only.
    pub fn set_catalog_public(&self, project: &str, public: bool, now: Millis) -> Result<()> {
        self.db.write(|c| {
            let p = project_in(c, project)?;
            q::set_catalog_public(c, p.id, public)?;
            q::log(
                c,
                &NewEvent {
                    project_id: Some(p.id),
                    detail: json!({ "public": public }).to_string(),
                    ..event("catalog_changed", now)
                },
            )?;
            Ok(())
        })
    }

    pub fn create_project(&self, settings: &ProjectSettings, now: Millis) -> Result<ProjectRow> {
        settings.validate().map_err(EngineError::Invalid)?;
        self.db.write(|c| {
            if q::project_by_name(c, &settings.name)?.is_some() {
                return Err(EngineError::Conflict(format!(
                    "project {} exists already",
                    settings.name
                )));
            }
            let row = q::insert_project(c, &new_project(settings, now))?;
            q::log(
                c,
                &NewEvent {
                    project_id: Some(row.id),
                    detail: json!({ "name": row.name }).to_string(),
                    ..event("project_created", now)
                },
            )?;
            Ok(row)
        })
    }

    /// Makes accept-next require (or stop requiring) the project's qualification test.
    pub fn set_qualification_required(
        &self,
        name: &str,
        required: bool,
        now: Millis,
    ) -> Result<()> {
        self.db.write(|c| {
            let project = project_in(c, name)?;
            q::set_qualification_required(c, project.id, required)?;
            q::log(
                c,
                &NewEvent {
                    project_id: Some(project.id),
                    detail: json!({ "required": required }).to_string(),
                    ..event("qualification_required", now)
                },
            )?;
            Ok(())
        })
    }

    pub fn project(&self, name: &str) -> Result<ProjectRow> {
        self.db
            .read(|c| q::project_by_name(c, name).map_err(EngineError::from))?
            .ok_or_else(|| EngineError::NotFound(format!("no project named {name:?}")))
    }

    pub fn projects(&self) -> Result<Vec<ProjectRow>> {
        self.db.read(|c| Ok(q::all_projects(c)?))
    }
}
