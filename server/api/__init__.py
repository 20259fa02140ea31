"""The resource routes: sessions, projects, entities, memory search, models, health, metrics."""
