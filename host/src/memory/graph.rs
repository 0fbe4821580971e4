//! Reading the graph: pages, nodes with their relations, and breadth-first
//! traversal from an entity.

use std::collections::{HashMap, HashSet, VecDeque};

use super::model::{
    Direction, GraphPage, MAX_DEPTH, MAX_TRAVERSAL_NODES, MemoryError, Relation, Result, ScopeKey,
    Subgraph, Traversal, TraverseOptions, TraversedNode,
};
use super::store::{Edge, GraphReader};

/// Turns edges into named relations, looking names up once per entity.
fn named(reader: &GraphReader, edges: &[Edge]) -> Result<Vec<Relation>> {
    named_knowing(reader, edges, HashMap::new())
}

/// [`named`], starting from names the caller already loaded.
fn named_knowing(
    reader: &GraphReader,
    edges: &[Edge],
    mut names: HashMap<u64, String>,
) -> Result<Vec<Relation>> {
    let mut out = Vec::with_capacity(edges.len());
    for edge in edges {
        let mut name_of = |id: u64| -> Result<String> {
            if let Some(n) = names.get(&id) {
                return Ok(n.clone());
            }
            let n = reader.entity_name(id)?.ok_or_else(|| {
                MemoryError::Storage(format!("relation points to missing entity {id}"))
            })?;
            names.insert(id, n.clone());
            Ok(n)
        };
        let from = name_of(edge.from)?;
        let to = name_of(edge.to)?;
        out.push(Relation {
            from,
            to,
            relation_type: edge.kind.clone(),
            strength: edge.strength,
            confidence: edge.confidence,
            valid_from: None,
            valid_to: None,
        });
    }
    Ok(out)
}

pub fn page(
    reader: &GraphReader,
    scope: &ScopeKey,
    cursor: Option<&str>,
    limit: usize,
) -> Result<GraphPage> {
    let ids = reader.page(scope, cursor, limit + 1)?;
    let more = ids.len() > limit;
    let ids = &ids[..ids.len().min(limit)];
    let mut entities = Vec::with_capacity(ids.len());
    let mut edges = Vec::new();
    for (_, id) in ids {
        if let Some(entity) = reader.entity(*id)? {
            entities.push(entity);
        }
        edges.extend(reader.edges(*id, false)?);
    }
    Ok(GraphPage {
        entities,
        relations: named(reader, &edges)?,
        next_cursor: if more {
            ids.last().map(|(n, _)| n.clone())
        } else {
            None
        },
    })
}

pub fn open_nodes(reader: &GraphReader, scope: &ScopeKey, names: &[String]) -> Result<Subgraph> {
    let mut ids = Vec::new();
    for name in names {
        if let Some(id) = reader.entity_id(scope, name)? {
            ids.push(id);
        }
    }
    let wanted: HashSet<u64> = ids.iter().copied().collect();
    let mut entities = Vec::new();
    let mut edges = Vec::new();
    for id in &ids {
        if let Some(e) = reader.entity(*id)? {
            entities.push(e);
        }
        edges.extend(
            reader
                .edges(*id, false)?
                .into_iter()
                .filter(|e| wanted.contains(&e.to)),
        );
    }
    Ok(Subgraph {
        entities,
        relations: named(reader, &edges)?,
    })
}

pub fn traverse(
    reader: &GraphReader,
    scope: &ScopeKey,
    start: &str,
    options: &TraverseOptions,
) -> Result<Traversal> {
    if options.max_depth > MAX_DEPTH {
        return Err(MemoryError::Invalid(format!(
            "max_depth {} is too deep; the limit is {MAX_DEPTH}",
            options.max_depth
        )));
    }
    let start_id = reader.entity_id(scope, start)?.ok_or_else(|| {
        MemoryError::NotFound(format!(
            "no entity named `{start}` in scope `{scope}` to start from"
        ))
    })?;
    let kinds: HashSet<&str> = options.relation_types.iter().map(String::as_str).collect();
    let mut depth_of: HashMap<u64, u32> = HashMap::from([(start_id, 0)]);
    let mut order = vec![start_id];
    let mut queue = VecDeque::from([start_id]);
    let mut edges: Vec<Edge> = Vec::new();
    let mut seen_edges: HashSet<(u64, String, u64)> = HashSet::new();
    while let Some(id) = queue.pop_front() {
        let depth = depth_of[&id];
        if depth == options.max_depth {
            continue;
        }
        let mut around = Vec::new();
        if matches!(options.direction, Direction::Outgoing | Direction::Both) {
            around.extend(reader.edges(id, false)?);
        }
        if matches!(options.direction, Direction::Incoming | Direction::Both) {
            around.extend(reader.edges(id, true)?);
        }
        for edge in around {
            if edge.strength < options.min_strength
                || (!kinds.is_empty() && !kinds.contains(edge.kind.as_str()))
            {
                continue;
            }
            let next = if edge.from == id { edge.to } else { edge.from };
            // In one direction every edge is found once, from the one end
            // that is expanded; only both directions meet it twice.
            if options.direction != Direction::Both
                || seen_edges.insert((edge.from, edge.kind.clone(), edge.to))
            {
                edges.push(edge);
            }
            if let std::collections::hash_map::Entry::Vacant(slot) = depth_of.entry(next) {
                if order.len() >= MAX_TRAVERSAL_NODES {
                    return Err(MemoryError::Invalid(format!(
                        "the traversal reaches more than {MAX_TRAVERSAL_NODES} entities; lower \
                         max_depth, or narrow it with relation_types or min_strength"
                    )));
                }
                slot.insert(depth + 1);
                order.push(next);
                queue.push_back(next);
            }
        }
    }
    let mut nodes = Vec::with_capacity(order.len());
    // Every edge joins two reached entities: their names come from the
    // records loaded here, not from a second read per entity.
    let mut names = HashMap::with_capacity(order.len());
    for id in order {
        if let Some(entity) = reader.entity(id)? {
            names.insert(id, entity.name.clone());
            nodes.push(TraversedNode {
                depth: depth_of[&id],
                entity,
            });
        }
    }
    Ok(Traversal {
        start: start.to_string(),
        nodes,
        relations: named_knowing(reader, &edges, names)?,
    })
}
