//! Diesel's view of the tables in `migrations/` (the same on both backends; times are Unix ms).
//! Kept in step with the migrations by the storage tests, which run every query on both.

diesel::table! {
    projects (id) {
        id -> BigInt,
        name -> Text,
        title -> Text,
        instructions -> Text,
        reward_cents -> BigInt,
        assignments_per_set -> Integer,
        lease_ms -> BigInt,
        auto_approve_ms -> BigInt,
        qualification_required -> Bool,
        created_at -> BigInt,
        prolific_completion_code -> Nullable<Text>,
        order_by_priority -> Bool,
        max_live_per_worker -> Integer,
        max_bonus_cents -> BigInt,
        mturk_enabled -> Bool,
        catalog_public -> Bool,
    }
}

diesel::table! {
    exemplar_sets (id) {
        id -> BigInt,
        project_id -> BigInt,
        model -> Text,
        layer -> Text,
        unit -> Integer,
        exemplars -> Text,
        active_count -> Integer,
        approved_count -> Integer,
        priority -> Double,
        created_at -> BigInt,
    }
}

diesel::table! {
    slots (set_id, slot) {
        set_id -> BigInt,
        slot -> Integer,
    }
}

diesel::table! {
    workers (id) {
        id -> BigInt,
        external_id -> Text,
        blocked -> Bool,
        block_reason -> Nullable<Text>,
        created_at -> BigInt,
        password_hash -> Nullable<Text>,
    }
}

diesel::table! {
    assignments (id) {
        id -> BigInt,
        public_id -> Text,
        set_id -> BigInt,
        slot -> Integer,
        worker_id -> BigInt,
        state -> Text,
        accepted_at -> BigInt,
        expires_at -> BigInt,
        submitted_at -> Nullable<BigInt>,
        reviewed_at -> Nullable<BigInt>,
        ended_at -> Nullable<BigInt>,
        feedback -> Nullable<Text>,
        idempotency_key -> Nullable<Text>,
        request_hash -> Nullable<Text>,
        submit_response -> Nullable<Text>,
        verified -> Bool,
    }
}

diesel::table! {
    descriptions (id) {
        id -> BigInt,
        assignment_id -> BigInt,
        set_id -> BigInt,
        raw -> Text,
        cleaned -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    ledger (id) {
        id -> BigInt,
        worker_id -> BigInt,
        assignment_id -> Nullable<BigInt>,
        kind -> Text,
        cents -> BigInt,
        note -> Text,
        created_at -> BigInt,
        idempotency_key -> Nullable<Text>,
        request_hash -> Nullable<Text>,
    }
}

diesel::table! {
    events (id) {
        id -> BigInt,
        at -> BigInt,
        kind -> Text,
        project_id -> Nullable<BigInt>,
        set_id -> Nullable<BigInt>,
        assignment_id -> Nullable<BigInt>,
        worker_id -> Nullable<BigInt>,
        detail -> Text,
    }
}

diesel::table! {
    requester_tokens (id) {
        id -> BigInt,
        token_hash -> Text,
        created_at -> BigInt,
        label -> Text,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    settings (name) {
        name -> Text,
        value -> Text,
    }
}

diesel::table! {
    worker_codes (id) {
        id -> BigInt,
        code_hash -> Text,
        worker_id -> BigInt,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    requesters (id) {
        id -> BigInt,
        username -> Text,
        password_hash -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    qualifications (project_id) {
        project_id -> BigInt,
        source -> Text,
        questions -> Text,
        pass_mark -> Integer,
        retry_delay_ms -> BigInt,
        time_limit_ms -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    qualification_attempts (id) {
        id -> BigInt,
        project_id -> BigInt,
        worker_id -> BigInt,
        correct -> Integer,
        total -> Integer,
        passed -> Bool,
        answers -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    qualification_openings (project_id, worker_id) {
        project_id -> BigInt,
        worker_id -> BigInt,
        started_at -> BigInt,
    }
}

diesel::table! {
    model_descriptions (id) {
        id -> BigInt,
        set_id -> BigInt,
        round -> Integer,
        system -> Text,
        description -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    sessions (id) {
        id -> BigInt,
        public_id -> Text,
        token_hash -> Text,
        worker_id -> Nullable<BigInt>,
        requester_id -> Nullable<BigInt>,
        via -> Text,
        entry -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    mturk_assignments (id) {
        id -> BigInt,
        project_id -> BigInt,
        mturk_assignment_id -> Text,
        hit_id -> Text,
        worker_id -> BigInt,
        assignment_id -> BigInt,
        submit_to -> Text,
        created_at -> BigInt,
        reconciled_at -> Nullable<BigInt>,
        flag -> Nullable<Text>,
    }
}

diesel::table! {
    prolific_sessions (id) {
        id -> BigInt,
        project_id -> BigInt,
        study_id -> Text,
        session_id -> Text,
        worker_id -> BigInt,
        created_at -> BigInt,
        completed_at -> Nullable<BigInt>,
        reconciled_at -> Nullable<BigInt>,
        flag -> Nullable<Text>,
    }
}

diesel::joinable!(exemplar_sets -> projects (project_id));
diesel::joinable!(mturk_assignments -> assignments (assignment_id));
diesel::joinable!(model_descriptions -> exemplar_sets (set_id));
diesel::joinable!(assignments -> exemplar_sets (set_id));
diesel::joinable!(assignments -> workers (worker_id));
diesel::joinable!(descriptions -> assignments (assignment_id));

diesel::allow_tables_to_appear_in_same_query!(
    model_descriptions,
    projects,
    exemplar_sets,
    slots,
    workers,
    assignments,
    descriptions,
    ledger,
    events,
    requester_tokens,
    settings,
    worker_codes,
    requesters,
    qualifications,
    qualification_attempts,
    qualification_openings,
    sessions,
    mturk_assignments,
    prolific_sessions,
);
