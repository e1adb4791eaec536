# MiCADO's VM rule from examples/micado/stressng_nova.yaml: one more node while overloaded,
# one fewer while idle, nothing while a change is still under way
if len(m_nodes) <= m_node_count and m_time_since_node_count_changed > 60:
    if node_overloaded:
        m_node_count += 1
    if node_underloaded:
        m_node_count -= 1
else:
    print('Transient phase, skipping update of nodes...')
